"""Dispatching one step's mod calls to isolated workers in parallel, and not waiting for stragglers.

With `mod_isolation=process` a mod call is a round trip to a worker process, so the engine thread
sends every request's call of a phase at once (one pool thread per request: it blocks on its
worker's pipe, not on the GIL) and then waits like this:

    dispatch all ─► wait for the first answer (t₁ after dispatch)
                 └► wait for the rest at most `max(floor, factor × t₁)` more
                    answered ─► go on with the step
                    not yet   ─► sit out: the request keeps its call in flight and skips the next
                                 forward; its answer is picked up in a later step

So a mod that takes most of its budget every step slows only its own requests; the worker pool
still enforces the budget itself (the call fails and its worker is killed past it).
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["StragglerPolicy", "wait_for_step"]


@dataclass(frozen=True)
class StragglerPolicy:
    floor_s: float = 0.002  # always wait this long for the rest: scheduling noise is not a straggler
    factor: float = 4.0  # ... or this many times the first answer's latency
    ceiling_s: float = 0.05  # never hold the batch longer than this for one slow call

    def grace(self, first_s: float) -> float:
        return min(max(self.floor_s, self.factor * first_s), self.ceiling_s)


def wait_for_step(futures: Iterable[cf.Future[object]], policy: StragglerPolicy, idle_s: float) -> None:
    """Block until the step may go on (see the module docstring). `idle_s` bounds the wait for the
    first answer, so the engine thread still admits new requests while every mod is busy."""
    pending = set(futures)
    if not pending:
        return
    started = time.monotonic()
    done, pending = cf.wait(pending, timeout=idle_s, return_when=cf.FIRST_COMPLETED)
    if not done or not pending:
        return
    cf.wait(pending, timeout=policy.grace(time.monotonic() - started))
