"""Issue 13 on the SGLang backend (CPU, fake scheduler): the isolated step makes one round trip per
request when the mod lets the step stand (each row sampled before its mod answered ForwardPass;
ForwardPass, Sampled and Added sent in one frame), and that changes nothing a client sees: seeded,
with a mod that edits at some steps of every kind, the text equals the inline step's token for token.

One SGLang engine runs per process, so the inline run and the isolated run take turns."""

from __future__ import annotations

from typing import Any

from quote_mod_sdk.serialize import load_mod
from quote_serving.engine.sampling import SamplingParams
from quote_serving.runtime.isolation import start_isolation
from tests.conformance.conftest import Engine

from .conftest import FakeSGLangRuntime

PLANNER = """
from quote_mod_sdk import mod, Added, ForwardPass, Sampled

@mod
def planner(event, actions):
    # ForwardPass answers other than noop at some steps (a masked row, a temperature, a forced
    # token), a Sampled and an Added that change the token at others; noop otherwise.
    if isinstance(event, ForwardPass) and event.step % 3 == 0:
        logits = event.logits.clone()
        logits[int(logits.argmax())] = float("-inf")
        return actions.adjust_logits(logits)
    if isinstance(event, ForwardPass) and event.step % 4 == 0:
        return actions.adjust_logits(token_temp=0.3)
    if isinstance(event, ForwardPass) and event.step % 7 == 0:
        return actions.force_tokens([21])
    if isinstance(event, Sampled) and event.step % 5 == 0:
        return actions.force_tokens([event.sampled_token + 1])
    if isinstance(event, Added) and not event.forced and event.step % 11 == 0:
        return actions.force_tokens([12, 13])
    return None
"""
BUNDLE = {"language": "python", "module": "planner", "entrypoint": "planner", "source": PLANNER, "name": "planner"}
PROMPTS = ["Say hi.", "Count to ten.", "Name a colour.", "Why is the sky blue?"]


def _outputs(runtime: FakeSGLangRuntime, tiny: Any, planner: Any) -> list[tuple[int, ...]]:
    runtime.start()
    try:
        engine = Engine("sglang-fake", tiny.model, tiny.tokenizer, runtime)
        requests = [
            engine.request(p, planner, max_tokens=24, sampling=SamplingParams(temperature=0.9, seed=3 + i))
            for i, p in enumerate(PROMPTS)
        ]
        snapshots = [snap for _, snap in engine.run(*requests)]
    finally:
        runtime.stop()
    assert [s.error for s in snapshots] == [None] * len(PROMPTS)
    return [s.output for s in snapshots]


def test_one_round_trip_steps_give_the_inline_text_token_for_token(tiny: Any) -> None:
    expected = _outputs(FakeSGLangRuntime(tiny.model, tiny.tokenizer), tiny, load_mod(BUNDLE))
    isolation = start_isolation("process", dev_mode=False, tokenizer=tiny.tokenizer, budget_ms=2000)
    try:
        runtime = FakeSGLangRuntime(tiny.model, tiny.tokenizer)
        isolation.attach(runtime)
        assert runtime.mod_calls is not None  # the ticket path, not threads
        got = _outputs(runtime, tiny, isolation.loader(BUNDLE))
    finally:
        isolation.close()
    assert got == expected
    full = [output for output in got if len(output) == 24]  # (a request may sample EOS first)
    assert len(full) >= 3 and all(21 in output for output in full)  # the edits happened


NOOP = """
from quote_mod_sdk import mod

@mod
def quiet(event, actions):
    return None
"""


class _Counting:
    """The pool's `submit`, counted: how many frames the step sends."""

    def __init__(self, calls: Any) -> None:
        self.calls, self.sent = calls, 0

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        self.sent += 1
        return self.calls.submit(*args, **kwargs)


def test_a_step_whose_mod_answers_noop_is_one_frame_per_request(tiny: Any) -> None:
    bundle = {"language": "python", "module": "quiet", "entrypoint": "quiet", "source": NOOP, "name": "quiet"}
    isolation = start_isolation("process", dev_mode=False, tokenizer=tiny.tokenizer, budget_ms=2000)
    runtime = FakeSGLangRuntime(tiny.model, tiny.tokenizer)
    try:
        isolation.attach(runtime)
        counting = runtime.mod_calls = _Counting(runtime.mod_calls)
        runtime.start()
        engine = Engine("sglang-fake", tiny.model, tiny.tokenizer, runtime)
        quiet = isolation.loader(bundle)
        results = engine.run(*(engine.request(p, quiet, max_tokens=12) for p in PROMPTS))
    finally:
        runtime.stop()
        isolation.close()
    events = [c.event for handle, _ in results for c in handle.trace.mod_calls]  # type: ignore[union-attr]
    steps = events.count("ForwardPass")
    assert steps >= len(PROMPTS) * 2 and events.count("Sampled") == steps and events.count("Added") >= steps - 4
    assert counting.sent == steps  # ForwardPass, Sampled and Added of a step: one frame


STALLER = """
import time
from quote_mod_sdk import mod, Sampled

@mod
def staller(event, actions):
    if isinstance(event, Sampled) and event.step == 3:
        time.sleep(60)  # the Sampled sent with its ForwardPass never answers in time
    return None
"""


def test_a_chained_call_that_never_answers_fails_only_its_request(tiny: Any) -> None:
    """The attack on the one-frame step: a mod that hangs in the Sampled sent ahead with its
    ForwardPass. The pool kills its worker at the budget and its request fails naming the mod and
    the event; the other tenant's request in the same batches completes."""
    bundle = {"language": "python", "module": "staller", "entrypoint": "staller", "source": STALLER, "name": "staller"}
    isolation = start_isolation("process", dev_mode=False, tokenizer=tiny.tokenizer, budget_ms=1000)
    runtime = FakeSGLangRuntime(tiny.model, tiny.tokenizer)
    try:
        isolation.attach(runtime)
        runtime.start()
        engine = Engine("sglang-fake", tiny.model, tiny.tokenizer, runtime)
        quiet_bundle = {"language": "python", "module": "quiet", "entrypoint": "quiet", "source": NOOP, "name": "quiet"}
        staller, quiet = isolation.loader(bundle), isolation.loader(quiet_bundle)
        stalled_request = engine.request("Say hi.", staller, max_tokens=8)
        stalled_request.tenant = "mallory"
        other = engine.request("Count to ten.", quiet, max_tokens=8)
        other.tenant = "alice"
        ((_, stalled), (_, fine)) = engine.run(stalled_request, other)
    finally:
        runtime.stop()
        isolation.close()
    assert stalled.error is not None and "staller" in stalled.error and "budget on Sampled" in stalled.error
    assert fine.error is None and len(fine.output) >= 1
