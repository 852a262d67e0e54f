"""`RemoteRuntime`: the ingress's stand-in for `ModRuntime`; generation runs on engine replicas.

The API routes stay exactly as in `quote serve`: they build a `GenerationRequest`, wrap it in a
`RequestHandle` and call `ctx.runtime.submit(handle)`. Here `submit` starts one task per request:

    submit(handle) ─ observers.on_submitted (trace context, mod version) ─► EngineRequest
        the mod becomes ModRef(name, version, digest) (TrackedSource remembers what it resolved)
    task: engine.generate.remote(EngineRequest)   Serve routes it to the least busy replica, streamed
        each EngineUpdate ─► handle.publish(snapshot)   (the routes' waiting and streaming unchanged)
        the final update's trace ─► this ingress's TraceStore (GET /v1/traces/{id}) and on_finished
    client gone (handle.cancelled) ─► cancel the Serve stream ─► the replica drops the request
    replica died or unreachable ─► a finished snapshot with error_kind "engine_error" (OpenAI error
        shape: a 500, or an error event mid-stream), never a hang

Observers (metrics, spans) hear the four moments as the ingress sees them, so time to first token
includes the hop; per-step instants come from the engine with the final update. Traces live on
the ingress replica that proxied the request (shared traces are the OTLP exporter's job).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ray.exceptions import RayError
from ray.serve.exceptions import RayServeException
from ray.serve.handle import DeploymentHandle

from quote_mod_sdk.generation import RequestTrace
from quote_mod_sdk.mod import Mod
from quote_serving.ray_serve.mod_refs import TrackedSource
from quote_serving.ray_serve.replica_header import ReplicaSlot, current_slot
from quote_serving.ray_serve.wire import EngineRequest, EngineUpdate, ModRef, to_wire
from quote_serving.runtime.observers import RuntimeObserver, notify
from quote_serving.runtime.requests import RequestHandle, Snapshot
from quote_serving.runtime.traces import StoredTrace, TraceStore

__all__ = ["EngineInfo", "RemoteRuntime"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineInfo:
    """What the routes read from `ctx.runtime.backend`."""

    vocab_size: int


class RemoteRuntime:
    """`submit` / `healthy` / `load` / `traces` / `backend` / `observers` over an engine handle."""

    def __init__(
        self,
        engine: DeploymentHandle[Any],
        mods: TrackedSource,
        *,
        model_name: str,
        vocab_size: int,
        tokenizer: Any,
        traces: TraceStore | None = None,
        cancel_poll_s: float = 0.25,
    ) -> None:
        self.model_name = model_name
        self.backend = EngineInfo(vocab_size)
        self.traces = traces or TraceStore()
        self.observers: list[RuntimeObserver] = []  # the API's observability appends before start()
        self._engine = engine.options(stream=True)
        self._mods = mods
        self._tokenizer = tokenizer
        self._poll = cancel_poll_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False

    # -- lifecycle (the app's lifespan) ---------------------------------------------------------
    def start(self) -> None:
        self._running = True

    def stop(self) -> None:
        """Called after Serve drained this replica; anything still running is cut off."""
        self._running = False
        for task in list(self._tasks):
            task.cancel()
        self._mods.close()

    @property
    def healthy(self) -> bool:
        return self._running

    @property
    def load(self) -> int:
        return len(self._tasks)

    def submit(self, handle: RequestHandle) -> RequestHandle:
        handle.timings.submitted_ns = time.time_ns()
        notify(self.observers, "on_submitted", handle)  # in the HTTP request's context: captures it
        request = to_wire(handle.request, self._mod_ref(handle.request.mod))
        task = asyncio.get_running_loop().create_task(self._forward(handle, request, current_slot()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return handle

    # -- one request ----------------------------------------------------------------------------
    async def _forward(self, handle: RequestHandle, request: EngineRequest, slot: ReplicaSlot | None) -> None:
        last = handle.snapshot
        try:
            async for update in self._updates(self._engine.generate.remote(request), handle):
                if slot is not None and slot.value is None:
                    slot.value = update.replica
                self._observe(handle, update)
                last = update.snapshot
                handle.publish(last)
        except (RayError, RayServeException) as exc:
            # The one place engine-side failures become a request error (replica killed, unreachable,
            # backpressure, or the engine raised): the request ends cleanly, other requests carry on.
            logger.warning("request %s: engine replica failed: %s", handle.request_id, type(exc).__name__)
            self._fail(handle, last, f"the engine replica serving this request failed ({type(exc).__name__})")
            return
        if not last.finished and not handle.cancelled:
            self._fail(handle, last, "the engine replica ended the request's stream before it finished")

    async def _updates(self, stream: Any, handle: RequestHandle) -> AsyncIterator[EngineUpdate]:
        """The stream's updates; stops (and cancels the stream) once the client has gone."""
        pending: asyncio.Future[EngineUpdate] | None = None
        try:
            while not handle.cancelled:
                if pending is None:
                    pending = asyncio.ensure_future(stream.__anext__())
                done, _ = await asyncio.wait({pending}, timeout=self._poll)
                if not done:
                    continue
                try:
                    update = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                yield update
            stream.cancel()
        finally:
            if pending is not None and not pending.done():
                pending.cancel()

    def _mod_ref(self, mod: Mod | None) -> ModRef | None:
        if mod is None:
            return None
        ref = self._mods.ref_of(mod)
        if ref is None:  # every mod the routes see comes from ctx.mods, which is this TrackedSource
            raise RuntimeError(f"mod {mod.name!r} was not resolved through the application's mod source")
        return ref

    # -- what observers and traces see ----------------------------------------------------------
    def _observe(self, handle: RequestHandle, update: EngineUpdate) -> None:
        timings, now = handle.timings, time.time_ns()
        if timings.admitted_ns is None:
            timings.admitted_ns = now
            notify(self.observers, "on_admitted", handle)
        if timings.first_token_ns is None and update.snapshot.output:
            timings.first_token_ns = now
            notify(self.observers, "on_first_token", handle)
        if update.timings is not None:  # per-step instants are the engine's
            timings.prefilled_ns, timings.step_end_ns = update.timings.prefilled_ns, update.timings.step_end_ns
        if update.snapshot.finished:
            trace = update.trace or _error_trace(handle, update.snapshot.error or "ended without a trace")
            self._finish(handle, trace, update.snapshot.error_kind)

    def _finish(self, handle: RequestHandle, trace: RequestTrace, error_kind: str | None) -> None:
        handle.timings.finished_ns = time.time_ns()
        handle.trace = trace
        self.traces.put(StoredTrace(trace, self.model_name, handle.request.tenant, time.time()))
        notify(self.observers, "on_finished", handle, trace, error_kind)

    def _fail(self, handle: RequestHandle, last: Snapshot, message: str) -> None:
        message = f"{message}; no further output will come. Retry the request."
        self._finish(handle, _error_trace(handle, message), "engine_error")
        # Nothing is erased and the final text covers the output so far, as in the engine's own error
        # snapshots: a stream cursor checks both against what it already sent before reporting the error.
        ended = dataclasses.replace(last, low_water=len(last.output), finished=True, finish_reason="error")
        text = str(self._tokenizer.decode(list(last.output)))
        handle.publish(dataclasses.replace(ended, text=text, error=message, error_kind="engine_error"))


def _error_trace(handle: RequestHandle, message: str) -> RequestTrace:
    """The trace of a request that ended before the engine could record one (it failed, or its replica did)."""
    request = handle.request
    trace = RequestTrace(request.request_id, request.mod.name if request.mod else None, list(request.prompt_tokens))
    trace.finish_reason, trace.error = "error", message
    return trace
