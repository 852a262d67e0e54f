"""The SGLang backend on a real GPU with the pinned sglang (skipped elsewhere, with the reason).

The conformance suite runs on it too (tests/conformance, backend `sglang`); these check what only
the real scheduler can show: the hooks are applied, SGLang's own memory invariants hold after
trims and requeues, requests requeued through the radix cache reuse their prefix, and many
concurrent modded requests agree with the simulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from quote_mod_sdk import Added, ForwardPass, mod
from quote_mod_sdk.testing import Simulator
from tests.conformance.conftest import Engine

from .gpu_support import build_sglang_parts

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module", params=["trim", "requeue"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    model, tokenizer, runtime = build_sglang_parts(inplace_trim=request.param == "trim")
    runtime.start()
    yield Engine(f"sglang-{request.param}", model, tokenizer, runtime)
    runtime.stop()


def simulated(engine: Engine, mod_: Any, prompt: str, max_tokens: int) -> Any:
    def model_logits(context: Any, vocab_size: int) -> Any:
        return engine.reference_logits(context).numpy()

    return Simulator(engine.tokenizer, model_logits, vocab_size=engine.runtime.backend.vocab_size).run(
        mod_, prompt, max_tokens=max_tokens
    )


def pools_ok(engine: Engine) -> None:
    """SGLang's own leak check (the one its idle loop runs), on an idle engine."""
    scheduler = engine.runtime._scheduler
    has_leak, messages = scheduler.invariant_checker._check_all_pools(scheduler.pool_stats_observer.get_pool_stats())
    assert not has_leak, messages


def test_quotes_hooks_are_applied_to_sglang(engine: Engine) -> None:
    from sglang.srt.plugins.hook_registry import HookRegistry

    from quote_serving.engine.sglang.plugin import HOOKS

    assert set(HOOKS) <= HookRegistry._patched


def test_greedy_output_matches_transformers(engine: Engine) -> None:
    ((_, snap),) = engine.run(engine.request("Say hi.", None, max_tokens=24))
    assert list(snap.output) == simulated(engine, None, "Say hi.", 24).tokens


def test_backtracks_and_forced_tokens_leave_no_leaked_kv(engine: Engine) -> None:
    @mod
    def busy(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, ForwardPass) and event.step % 5 == 0:
            return actions.force_tokens([300, 301, 302])
        if isinstance(event, Added) and event.step % 4 == 0 and not event.forced:
            return actions.backtrack(3, [400])
        return None

    results = engine.run(*(engine.request(f"Request {i}.", busy, max_tokens=40) for i in range(16)))
    assert all(snap.error is None for _, snap in results)
    assert list(results[0][1].output) == simulated(engine, busy, "Request 0.", 40).tokens
    assert engine.runtime.healthy
    pools_ok(engine)


def test_a_requeued_request_reuses_its_cached_prefix(engine: Engine) -> None:
    prompt = engine.tokenizer.encode(" ".join(["tree house car road"] * 200), add_special_tokens=False)[:1500]

    @mod
    def late_force(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, ForwardPass) and event.step == 3:
            return actions.force_tokens([300, 301, 302, 303])
        return None

    stats = engine.runtime.backend.stats
    before = stats.tokens_computed
    ((_, snap),) = engine.run(engine.request(prompt, late_force, max_tokens=8))
    assert snap.error is None
    # prompt once, then a handful of decode/extend tokens: the requeue matched the radix tree
    assert stats.tokens_computed - before <= len(prompt) + 8 + 4 + 2


def test_many_concurrent_modded_requests(engine: Engine) -> None:
    def make(i: int) -> Any:
        @mod(name=f"m{i}")
        def m(event, actions):  # type: ignore[no-untyped-def]
            if isinstance(event, ForwardPass) and event.step == 2 + i % 5:
                return actions.backtrack(1 + i % 3, [100 + i])
            return None

        return m

    results = engine.run(*(engine.request(f"Number {i}.", make(i), max_tokens=32) for i in range(64)))
    for i in (0, 17, 63):
        assert list(results[i][1].output) == simulated(engine, make(i), f"Number {i}.", 32).tokens
    pools_ok(engine)
