"""The runtime's observer port: what tracing and metrics hear about a request, and when.

`ModRuntime` stamps a `RequestTimings` on every request as it moves along (a few integers per
step, no locks, no I/O) and calls its observers at four moments:

    submit() ──► on_submitted(handle)        caller's thread (the HTTP request's context)
    _admit() ──► on_admitted(handle)         engine thread, after the Prefilled event
    _step()  ──► on_first_token(handle)      engine thread, the first step with output
    _complete() ► on_finished(handle, trace, error_kind)   engine thread, the trace is final

Observers run on the thread that calls them, so the ones in `quote_serving.observability` only
stamp or enqueue there and do their real work elsewhere. An observer that raises is logged and
ignored: watching a request must never fail it. The runtime depends on nothing here but this
port; tracing and metrics plug into it from outside.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quote_mod_sdk.generation import RequestTrace
    from quote_serving.runtime.requests import RequestHandle

__all__ = ["RequestTimings", "RuntimeObserver", "notify"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class RequestTimings:
    """Wall-clock instants (ns since the epoch, `time.time_ns()`) of one request's life.

    Spans need real start and end times but are built after the request ends, so the runtime
    records instants as they happen instead of opening spans on the hot path.
    """

    submitted_ns: int = 0
    admitted_ns: int | None = None  # left the queue; the Prefilled event ran
    prefilled_ns: int | None = None  # the prompt's forward pass returned (first logits)
    first_token_ns: int | None = None  # the first step that left output behind
    finished_ns: int | None = None
    step_end_ns: list[int] = field(default_factory=list)  # [s-1]: when decode step s ended

    def step_time(self, step: int) -> int | None:
        """When a mod call at `step` happened, to within one step (step 0 is admission)."""
        if step <= 0 or not self.step_end_ns:
            return self.admitted_ns
        return self.step_end_ns[min(step, len(self.step_end_ns)) - 1]


class RuntimeObserver:
    """Base class of runtime observers; override what you need (all default to doing nothing)."""

    def on_submitted(self, handle: RequestHandle) -> None:
        """On the submitting thread: the place to capture the caller's context."""

    def on_admitted(self, handle: RequestHandle) -> None:
        """The request left the queue and its Prefilled event ran."""

    def on_first_token(self, handle: RequestHandle) -> None:
        """The request has output for the first time (time to first token is known)."""

    def on_finished(self, handle: RequestHandle, trace: RequestTrace, error_kind: str | None) -> None:
        """The request ended for any reason; `trace` and `handle.timings` are final.

        `error_kind` says why it failed, if it did: a mod's failure kind (`exception`, `timeout`,
        `invalid_action`, `emit_error`) or `engine_error`.
        """


def notify(observers: Sequence[RuntimeObserver], method: str, *args: object) -> None:
    """Call `method` on every observer; a failing observer is logged, never propagated."""
    for observer in observers:
        try:
            getattr(observer, method)(*args)
        except Exception:
            logger.exception("runtime observer %r failed in %s; the request carries on", observer, method)
