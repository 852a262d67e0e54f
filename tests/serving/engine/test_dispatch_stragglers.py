"""The isolated-mods step (runtime/dispatch.py) with real stragglers: a request whose mod answers
late sits out forwards, and when its answer comes in it is sampled before it is ever forwarded again.

The mods run in this process (the `dispatch` conformance backend: same step, in-process invoker) so
they can record what they see; the late ones sleep far past the step's grace, never past the budget.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from quote_mod_sdk import Added, ForwardPass, Sampled, mod
from quote_serving.engine.sampling import SamplingParams
from tests.conformance.conftest import BACKENDS, Engine


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    built = BACKENDS["dispatch"]()
    built.runtime.start()
    yield built
    built.runtime.stop()


def recording(late_on: tuple[type, ...], every: int) -> tuple[Any, list[tuple[str, int, int]]]:
    """A mod that logs (event, step, tokens seen so far) and sleeps 120 ms on `late_on` events at
    every `every`-th step."""
    seen: list[tuple[str, int, int]] = []
    added: list[int] = []

    @mod
    def record(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, Added):
            added.extend(event.added_tokens)
        if isinstance(event, (ForwardPass, Added)):
            seen.append((type(event).__name__, event.step, len(added)))
            if isinstance(event, late_on) and event.step % every == 0:
                time.sleep(0.12)
        return None

    return record, seen


def _check(seen: list[tuple[str, int, int]], output: tuple[int, ...]) -> None:
    passes = [(step, count) for kind, step, count in seen if kind == "ForwardPass"]
    assert [step for step, _ in passes] == list(range(1, len(output) + 1))  # one ForwardPass per step
    # Each forward follows exactly one more token: never a second forward before the last one's token.
    assert [count for _, count in passes] == list(range(len(output)))


@pytest.mark.parametrize("late_on", [(ForwardPass,), (Added,), (ForwardPass, Added)], ids=["plan", "added", "both"])
def test_a_late_request_is_never_forwarded_twice_for_one_token(engine: Engine, late_on: tuple[type, ...]) -> None:
    slow, slow_seen = recording(late_on, every=2)
    fast, fast_seen = recording((), every=1)
    (_, slow_snap), (_, fast_snap) = engine.run(
        engine.request("Say hi.", slow, max_tokens=8), engine.request("Count to ten.", fast, max_tokens=24)
    )
    assert slow_snap.error is None and fast_snap.error is None
    assert len(slow_snap.output) == 8 and len(fast_snap.output) == 24
    _check(slow_seen, slow_snap.output)
    _check(fast_seen, fast_snap.output)


def test_the_fast_request_does_not_wait_for_the_late_one(engine: Engine) -> None:
    slow, _ = recording((ForwardPass,), every=1)  # 120 ms at every step: 8 steps take about a second
    fast, _ = recording((), every=1)
    (slow_handle, _), (fast_handle, _) = engine.run(
        engine.request("Say hi.", slow, max_tokens=8), engine.request("Count to ten.", fast, max_tokens=24)
    )
    assert fast_handle.timings.finished_ns is not None and slow_handle.timings.finished_ns is not None
    assert fast_handle.timings.finished_ns < slow_handle.timings.finished_ns  # 24 tokens before its 8


def _editor() -> Any:
    """Changes what it is told at some steps: Sampled replaced (forced), Added backtracking with a
    reinjected token, Added forcing more; noop otherwise, so most steps run ahead and keep the row."""

    @mod
    def editor(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, Sampled) and event.step % 5 == 0:
            return actions.force_tokens([event.sampled_token + 1])
        if isinstance(event, Added) and not event.forced and event.step % 7 == 0:
            return actions.backtrack(1, [11])
        if isinstance(event, Added) and not event.forced and event.step % 9 == 0:
            return actions.force_tokens([12, 13])
        return None

    return editor


def test_running_ahead_is_taken_back_whenever_an_answer_changes_the_token(engine: Engine) -> None:
    """The isolated step forwards each sampled token before its Sampled/Added answers are in; when
    an answer replaces, erases or adds to it, the token is rolled back out of the backend. The text
    is what the inline step produces, token for token, and the rows were those of a fresh forward."""
    from tests.conformance.conftest import BACKENDS as FACTORIES

    prompts = ["Say hi.", "Count to ten.", "Name a colour.", "Why is the sky blue?"]
    stats = engine.runtime.backend.stats  # type: ignore[attr-defined]
    rollbacks = stats.rollbacks
    ahead = [snap.output for _, snap in engine.run(*(engine.request(p, _editor(), max_tokens=30) for p in prompts))]
    assert stats.rollbacks > rollbacks  # the changed steps took their token back
    inline = FACTORIES["embedded"]()
    inline.runtime.start()
    try:
        expected = [
            snap.output for _, snap in inline.run(*(inline.request(p, _editor(), max_tokens=30) for p in prompts))
        ]
    finally:
        inline.runtime.stop()
    assert ahead == expected
    for output in ahead:
        assert len(output) == 30 and 11 in output and 12 in output


def _planner() -> Any:
    """Answers ForwardPass with something other than noop at some steps (a mask on the likeliest
    token, a temperature, a forced token), noop otherwise: the step samples each row ahead of the
    ForwardPass answer, and must drop that draw whenever the answer is not noop."""

    @mod
    def planner(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, ForwardPass) and event.step % 3 == 0:
            logits = event.logits.clone()
            logits[int(logits.argmax())] = float("-inf")
            return actions.adjust_logits(logits)
        if isinstance(event, ForwardPass) and event.step % 4 == 0:
            return actions.adjust_logits(token_temp=0.3)
        if isinstance(event, ForwardPass) and event.step % 7 == 0:
            return actions.force_tokens([21])
        return None

    return planner


def test_a_row_sampled_ahead_of_its_answer_is_the_draw_the_inline_step_makes(engine: Engine) -> None:
    """Seeded sampling: whether the ForwardPass answer kept the draw made ahead (noop) or replaced
    the plan (an edited row, a temperature, a forced token: the generator is rewound and the plan
    sampled), every request's text equals the inline runtime's token for token."""
    from tests.conformance.conftest import BACKENDS as FACTORIES

    prompts = ["Say hi.", "Count to ten.", "Name a colour.", "Why is the sky blue?"]

    def requests(target: Engine) -> list[Any]:
        return [
            target.request(p, _planner(), max_tokens=24, sampling=SamplingParams(temperature=0.9, seed=7 + i))
            for i, p in enumerate(prompts)
        ]

    isolated = [snap.output for _, snap in engine.run(*requests(engine))]
    inline = FACTORIES["embedded"]()
    inline.runtime.start()
    try:
        expected = [snap.output for _, snap in inline.run(*requests(inline))]
    finally:
        inline.runtime.stop()
    assert isolated == expected
    for output in isolated:
        assert len(output) == 24 and 21 in output
