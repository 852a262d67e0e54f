"""What flows between the API (event loop) and the runtime (engine thread) for one request.

The API builds a `GenerationRequest` and gets a `RequestHandle`. The engine thread publishes a
`Snapshot` after every step it touched the request; the handle keeps only the latest one and
wakes the waiting coroutine, so a slow consumer never makes the engine queue work for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from quote_mod_sdk.generation import GenerationParams, RequestTrace
from quote_mod_sdk.mod import Mod
from quote_serving.engine.sampling import SamplingParams
from quote_serving.runtime.observers import RequestTimings

__all__ = ["GenerationRequest", "LoopWakes", "RequestHandle", "Snapshot"]


@dataclass
class GenerationRequest:
    request_id: str
    prompt_tokens: list[int]
    params: GenerationParams
    sampling: SamplingParams = field(default_factory=SamplingParams)
    mod: Mod | None = None
    messages: list[dict[str, Any]] | None = None
    tenant: str | None = None
    logprobs: bool = False  # return per-token logprobs to the client (the trace always has top-k)
    # The caller's W3C trace context ({"traceparent": ..., "tracestate": ...}), so the request's span
    # is a child of the caller's; a plain carrier keeps the runtime free of any tracing library.
    trace_context: dict[str, str] | None = None
    mod_version: str | None = None  # the resolved version of `mod`, when the resolver knows it


@dataclass(frozen=True)
class Snapshot:
    """The request as a client may see it now: output so far, and how it ended (if it has)."""

    output: tuple[int, ...] = ()
    low_water: int = 0  # shortest the output has been since the previous snapshot (backtracks)
    finished: bool = False
    finish_reason: str | None = None
    error: str | None = None
    error_kind: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    logprobs: tuple[tuple[float | None, tuple[tuple[int, float], ...]], ...] = ()
    prompt_tokens: int = 0
    text: str | None = None  # final text (stop strings cut) once finished


class RequestHandle:
    """The API side of a running request: await snapshots, cancel on disconnect."""

    def __init__(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.request_id = request.request_id
        self._loop = loop
        self._changed = asyncio.Event()
        self._lock = threading.Lock()
        self._snapshot = Snapshot(prompt_tokens=len(request.prompt_tokens))
        self._low_water: int | None = None  # min over snapshots published since the last read
        self.cancelled = False
        self.trace: RequestTrace | None = None
        self.timings = RequestTimings()  # stamped by the runtime; read by observers

    # engine thread
    def publish(self, snapshot: Snapshot, wakes: LoopWakes | None = None) -> None:
        """Make `snapshot` the latest and wake the waiting coroutine (through `wakes`, when the
        engine holds its wake-ups back until its step ends)."""
        with self._lock:
            self._snapshot = snapshot
            low = snapshot.low_water if self._low_water is None else min(self._low_water, snapshot.low_water)
            self._low_water = low
        if wakes is None or not wakes.hold(self._loop, self._changed):
            self._loop.call_soon_threadsafe(self._changed.set)

    # event loop
    @property
    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    async def next_snapshot(self) -> Snapshot:
        """Wait for news; the latest snapshot, with `low_water` covering every step since the last read."""
        await self._changed.wait()
        self._changed.clear()
        return self.latest()

    def latest(self) -> Snapshot:
        """The latest snapshot now, with `low_water` covering every step since the last read.

        A stream's first read must be this, not `snapshot`: otherwise the low water of earlier steps
        stays pending and the next read reports text it released as erased. A read with no news
        since the last one (a spurious wake-up) reports nothing erased.
        """
        with self._lock:
            low, self._low_water = self._low_water, None
            snapshot = self._snapshot
        if low is None:  # nothing published since the last read (a spurious wake-up): nothing erased either
            low = len(snapshot.output)
        return dataclasses.replace(snapshot, low_water=low)

    async def result(self) -> Snapshot:
        snapshot = self.snapshot
        while not snapshot.finished:
            snapshot = await self.next_snapshot()
        return snapshot

    def cancel(self) -> None:
        """The client went away: the engine drops the request at its next step."""
        self.cancelled = True


class LoopWakes:
    """Event-loop wake-ups the engine holds back while it steps, then sends as one call per loop.

    Each `call_soon_threadsafe` writes to the loop's self-pipe, and the loop thread it wakes takes
    the GIL at the engine thread's next system call: one wake per request per step put 8 such
    hand-offs in the middle of a step of 8 requests (and, with isolated mods, in the middle of
    the writes to their workers). Held, a step costs one wake per loop; a snapshot reaches its
    client when the step ends, as the last one of a step always did.
    """

    def __init__(self) -> None:
        self._owner: int | None = None  # the thread holding wake-ups now (only it may add)
        self._held: dict[asyncio.AbstractEventLoop, list[asyncio.Event]] = {}

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold this thread's wake-ups until the block ends (however it ends), then send them."""
        self._owner = threading.get_ident()
        try:
            yield
        finally:
            self._owner = None
            self.flush()

    def flush(self) -> None:
        """Send the wake-ups held so far (before the engine blocks waiting on something)."""
        held, self._held = self._held, {}
        for loop, events in held.items():
            with contextlib.suppress(RuntimeError):  # a loop closed meanwhile: nobody to wake
                loop.call_soon_threadsafe(_set_all, events)

    def hold(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> bool:
        """Keep this wake-up for later; False when the caller must send it now (not held here)."""
        if self._owner != threading.get_ident():
            return False
        self._held.setdefault(loop, []).append(event)
        return True


def _set_all(events: list[asyncio.Event]) -> None:
    for event in events:
        event.set()
