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

from quote_mod_sdk import Added, ForwardPass, mod
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
