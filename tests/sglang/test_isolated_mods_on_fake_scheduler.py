"""Issue 13 on the SGLang backend (CPU, fake scheduler): with process isolation the mods leave the
scheduler's process the same way as on the embedded engine: per-tenant confined workers, a scrubbed
environment, and a worker that dies failing only its own request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from quote_mod_sdk import serialize_mod
from quote_serving.runtime.isolation import ModIsolation, start_isolation
from tests.conformance.conftest import Engine
from tests.ray import mods

from .conftest import FakeSGLangRuntime


@pytest.fixture(scope="module")
def isolated(tiny: Any) -> Iterator[tuple[Engine, ModIsolation]]:
    runtime = FakeSGLangRuntime(tiny.model, tiny.tokenizer)
    isolation = start_isolation("process", dev_mode=False, tokenizer=tiny.tokenizer, budget_ms=2000)
    isolation.attach(runtime)
    runtime.start()
    yield Engine("sglang-fake", tiny.model, tiny.tokenizer, runtime), isolation
    runtime.stop()
    isolation.close()


def _load(isolation: ModIsolation, name: str) -> Any:
    return isolation.loader(serialize_mod(getattr(mods, name), name=name))


def test_mods_run_in_workers_that_see_nothing_of_the_scheduler(isolated: tuple[Engine, ModIsolation]) -> None:
    engine, isolation = isolated
    ((_, marked), (_, where)) = engine.run(
        engine.request("Say hi.", _load(isolation, "mark")), engine.request("Say hi.", _load(isolation, "where"))
    )
    assert engine.tokenizer.decode(list(marked.output)) == mods.MARK
    assert engine.tokenizer.decode(list(where.output)).strip() == "ENV 0"


def test_a_worker_that_exits_fails_only_its_request(isolated: tuple[Engine, ModIsolation]) -> None:
    engine, isolation = isolated
    ((_, vanished), (_, plain)) = engine.run(
        engine.request("Say hi.", _load(isolation, "vanish")), engine.request("Say hi.", max_tokens=6)
    )
    assert vanished.error is not None and "vanish" in vanished.error
    assert plain.error is None and len(plain.output) == 6
    ((_, again),) = engine.run(engine.request("Say hi.", _load(isolation, "mark")))
    assert engine.tokenizer.decode(list(again.output)) == mods.MARK

