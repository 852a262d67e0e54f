"""Where mods run (runtime/isolation.py): process isolation unless dev mode or the operator's
explicit `inline`, and no tenant's mod on a host that cannot apply every confinement layer unless
the operator accepts weaker isolation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from quote_mod_sdk import serialize_mod
from quote_serving.runtime.isolation import ModIsolation, ModIsolationRefusedError, resolve_mode, start_isolation
from quote_serving.runtime.mod_pool import RemoteMod
from tests.ray import mods


@pytest.mark.parametrize(
    ("mode", "dev_mode", "expected"),
    [
        ("auto", True, "inline"),
        ("auto", False, "process"),
        ("inline", False, "inline"),
        ("process", True, "process"),
    ],
)
def test_auto_is_inline_only_in_dev_mode(mode: str, dev_mode: bool, expected: str) -> None:
    assert resolve_mode(mode, dev_mode) == expected


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, inline or process"):
        resolve_mode("container", False)


@pytest.fixture(scope="module")
def production() -> Iterator[ModIsolation]:
    isolation = start_isolation("auto", dev_mode=False, tokenizer=None, budget_ms=2000)
    yield isolation
    isolation.close()


def test_outside_dev_mode_every_layer_is_applied_here_and_bundles_load_in_workers(production: ModIsolation) -> None:
    assert production.mode == "process" and production.missing_layers == {}
    mod = production.loader(serialize_mod(mods.mark, name="mark"))
    assert isinstance(mod, RemoteMod) and mod.max_backtrack == 0


def test_a_missing_layer_refuses_tenants_mods_unless_weaker_isolation_is_accepted(production: ModIsolation) -> None:
    bundle = serialize_mod(mods.mark, name="mark")
    weakened = ModIsolation("process", production.pool, missing_layers={"landlock": "unavailable: old kernel"})
    with pytest.raises(ModIsolationRefusedError, match="landlock") as refused:
        weakened.loader(bundle)
    assert "QUOTE_MOD_ISOLATION_WEAK" in str(refused.value)
    weakened.weak_ok = True
    assert isinstance(weakened.loader(bundle), RemoteMod)


def test_inline_outside_dev_mode_is_the_operators_explicit_choice_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    isolation = start_isolation("inline", dev_mode=False, tokenizer=None, budget_ms=2000)
    assert isolation.mode == "inline" and isolation.pool is None
    assert any("INLINE" in record.message and record.levelname == "WARNING" for record in caplog.records)
