"""Edge cases of the runtime + bridge + ops on the fake scheduler, beyond the conformance suite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from quote_mod_sdk import Added, Finished, ForwardPass, mod
from quote_mod_sdk.testing import Simulator
from tests.conformance.conftest import Engine

from .conftest import FakeSGLangRuntime


@pytest.fixture(scope="module")
def engine(tiny: Any) -> Iterator[Engine]:
    runtime = FakeSGLangRuntime(tiny.model, tiny.tokenizer)
    runtime.start()
    yield Engine("sglang-fake", tiny.model, tiny.tokenizer, runtime)
    runtime.stop()


def simulate(engine: Engine, mod_: Any, prompt: str, max_tokens: int) -> Any:
    def model_logits(context: Any, vocab_size: int) -> Any:
        return engine.reference_logits(context).numpy()

    sim = Simulator(engine.tokenizer, model_logits, vocab_size=engine.runtime.backend.vocab_size)
    return sim.run(mod_, prompt, max_tokens=max_tokens)


def test_repeated_requeues_that_erase_earlier_extensions_keep_the_kv_exact(engine: Engine) -> None:
    """Force, then erase into the forced tokens and force again: SGLang's cached fill ids must not go stale."""

    @mod
    def churn(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, ForwardPass) and event.step == 2:
            return actions.force_tokens([300, 301, 302])
        if isinstance(event, ForwardPass) and event.step == 4:
            return actions.backtrack(3, [310, 311, 312])
        if isinstance(event, ForwardPass) and event.step == 6:
            return actions.backtrack(5, [320, 321])
        return None

    requeued_before = len(engine.runtime.fake.requeued)
    ((_, snap),) = engine.run(engine.request("Say hi.", churn, max_tokens=14))
    assert snap.error is None
    assert list(snap.output) == simulate(engine, churn, "Say hi.", 14).tokens
    assert len(engine.runtime.fake.requeued) - requeued_before == 3


def test_backtracks_within_decoded_tokens_never_prefill_again(engine: Engine) -> None:
    @mod
    def wobble(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, Added) and event.step % 3 == 0 and not event.forced:
            return actions.backtrack(2, [400])
        return None

    stats = engine.runtime.backend.stats
    requeued, computed = len(engine.runtime.fake.requeued), stats.tokens_computed
    ((_, snap),) = engine.run(engine.request("Say hi.", wobble, max_tokens=12))
    assert list(snap.output) == simulate(engine, wobble, "Say hi.", 12).tokens
    assert len(engine.runtime.fake.requeued) == requeued  # all trimmed in place
    steps = len(snap.output) * 2  # a generous bound on decode steps
    assert stats.tokens_computed - computed <= len(engine.tokenizer.encode("Say hi.")) + steps


def test_sglang_ending_a_request_on_its_own_reaches_the_mod_once(engine: Engine) -> None:
    """SGLang's context-length cap (max_new_tokens) ends the request: finish_reason length, Finished once."""
    reasons: list[str] = []

    @mod
    def watch(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, Finished):
            reasons.append(event.reason)
        return None

    engine.runtime.fake.cap_new_tokens = 3
    try:
        ((_, snap),) = engine.run(engine.request("Say hi.", watch, max_tokens=10))
    finally:
        engine.runtime.fake.cap_new_tokens = None
    assert snap.finish_reason == "length" and len(snap.output) == 3
    assert reasons == ["length"]


def test_an_abort_from_sglang_fails_the_request_with_its_message(engine: Engine) -> None:
    engine.runtime.fake.abort_after = (2, "Out of memory even after retracting all other requests")
    try:
        ((_, snap),) = engine.run(engine.request("Say hi.", None, max_tokens=10))
    finally:
        engine.runtime.fake.abort_after = None
    assert snap.finish_reason == "error" and snap.error_kind == "engine_error"
    assert "Out of memory" in (snap.error or "")


def test_requests_cancelled_before_sglang_runs_them_are_let_go(engine: Engine) -> None:
    engine.runtime.fake.paused = True
    try:
        results = engine.run(*(engine.request("Say hi.", None, max_tokens=10) for _ in range(3)), cancel_after=0.2)
    finally:
        engine.runtime.fake.paused = False
    assert all(snap.finish_reason == "abort" for _, snap in results)
    engine.run(engine.request("Say hi.", None, max_tokens=2))  # the engine carries on
    assert len(engine.runtime.view.bridge.table) == 0  # type: ignore[union-attr]
