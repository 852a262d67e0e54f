"""The state the SGLang hooks share: Quote's requests in the scheduler, step by step.

The plugin's hooks (`plugin.py`) are thin: each looks up the process's active bridge and, when
there is none (plain SGLang with this package installed), calls the original untouched. With a
bridge, one scheduler iteration goes:

    recv_requests      → on_recv: admit new requests (Prefilled ran in the runtime), hand SGLang
                         their prompts; abort requests whose client went away
    run_batch          → begin_batch: remember the batch's requests; count the forward
      model.sample     → sample: StepRunner (ForwardPass, edits, sampling, Sampled/Added, plans);
                         FINISH plans set `req.to_finish` before SGLang processes the batch
    process_batch_result → after_result: TRIM / REQUEUE plans (scheduler_ops); SGLang's own
                         finishes (aborts, context length) reach the generation; snapshots published
    stream_output      → Quote's requests are dropped from SGLang's output (the runtime streams them)
    send_output        → an abort SGLang reports for a Quote request ends it; anything else is
                         dropped (no tokenizer or detokenizer process listens in-process)
    maybe_sleep_on_idle → wait for Quote's next request instead of polling ZMQ sockets

All of it runs on the engine thread, which is also SGLang's scheduler thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from quote_serving.engine.port import EngineStats
from quote_serving.engine.sglang.rollback import SyncKind, SyncPlan
from quote_serving.engine.sglang.scheduler_ops import SchedulerOps
from quote_serving.engine.sglang.step import StepOptions, StepRunner
from quote_serving.engine.sglang.tracked import RequestTable, TrackedRequest

__all__ = ["BridgeHost", "SchedulerBridge", "activate", "active_bridge", "deactivate"]

logger = logging.getLogger(__name__)

_ACTIVE: SchedulerBridge | None = None
_ACTIVE_LOCK = threading.Lock()


def active_bridge() -> SchedulerBridge | None:
    """The bridge of the SGLang scheduler running in this process, if Quote drives one."""
    return _ACTIVE


def activate(bridge: SchedulerBridge) -> None:
    """Make `bridge` the process's bridge; one in-process SGLang scheduler per process."""
    global _ACTIVE
    with _ACTIVE_LOCK:
        if _ACTIVE is not None and _ACTIVE is not bridge:
            raise RuntimeError("an SGLang engine already runs in this process: stop it before starting another")
        _ACTIVE = bridge


def deactivate(bridge: SchedulerBridge) -> None:
    global _ACTIVE
    with _ACTIVE_LOCK:
        if _ACTIVE is bridge:
            _ACTIVE = None


class BridgeHost(Protocol):
    """What the bridge needs from the runtime that owns the requests."""

    def admit(self) -> list[Any]:
        """Admit queued requests (Prefilled runs here); returns those still running."""
        ...

    def cancelled(self) -> list[Any]:
        """Running requests whose client went away."""
        ...

    def publish(self, live: Any, *, forwarded_ns: int, ended_ns: int) -> None:
        """Stamp the step; publish a snapshot, or complete the request if it finished."""
        ...

    def fail(self, live: Any, message: str, kind: str) -> None:
        """End the request with an engine error."""
        ...


@dataclass
class _Step:
    reqs: list[Any]
    decode: bool
    forwarded_ns: int = 0
    rows: list[TrackedRequest | None] = field(default_factory=list)


class SchedulerBridge:
    """Quote's side of one in-process SGLang scheduler (see the module docstring)."""

    def __init__(
        self,
        host: BridgeHost,
        *,
        vocab_size: int,
        stats: EngineStats,
        allow_trim: bool = True,
        page_size: int = 1,
        ops: SchedulerOps | None = None,
    ) -> None:
        self.host = host
        self.vocab_size = vocab_size
        self.stats = stats
        self.allow_trim = allow_trim
        self.page_size = page_size
        self.ops = ops or SchedulerOps()
        self.table = RequestTable()
        self.runner = StepRunner(vocab_size)
        self._aborts: deque[str] = deque()
        self._wake = threading.Event()
        self._step: _Step | None = None

    # ----- intake (recv_requests) -------------------------------------------------------------
    def on_recv(self) -> list[Any]:
        """SGLang inputs for this iteration: new requests, then aborts."""
        inputs = [self._submit(live) for live in self.host.admit()]
        for live in self.host.cancelled():
            self._cancel(live)
        while self._aborts:
            inputs.append(self.ops.api.abort_input(self._aborts.popleft()))
        return inputs

    def _submit(self, live: Any) -> Any:
        rid = live.gen.request_id
        prompt = self.table.track(rid, live)
        live.added = True
        self.stats.sequences_added += 1
        max_new_tokens = live.gen.params.max_tokens + 1  # Quote stops first; see generate_input
        return self.ops.api.generate_input(rid, prompt, max_new_tokens, self.vocab_size)

    def _cancel(self, live: Any) -> None:
        live.gen.finish("abort")
        self.host.publish(live, forwarded_ns=time.time_ns(), ended_ns=time.time_ns())

    def remove(self, rid: str) -> None:
        """The runtime is done with `rid`; make SGLang let go of it too if it still runs it."""
        tracked = self.table.get(rid)
        if tracked is not None and tracked.in_engine and not tracked.abort_sent:
            tracked.abort_sent = True
            self._aborts.append(rid)
            self.wake()

    # ----- idle ---------------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def wait_for_work(self, timeout: float) -> None:
        self._wake.wait(timeout)
        self._wake.clear()

    # ----- one step -----------------------------------------------------------------------------
    def begin_batch(self, batch: Any) -> None:
        decode = bool(batch.forward_mode.is_decode())
        self._step = _Step(list(batch.reqs), decode)
        self.stats.forward_calls += 1
        self.stats.tokens_computed += len(batch.reqs) if decode else int(batch.extend_num_tokens or 0)

    def end_batch(self) -> None:
        if self._step is not None and not self._step.forwarded_ns:
            self._step.forwarded_ns = time.time_ns()

    def sample(self, logits: torch.Tensor, rids: Sequence[str] | None) -> torch.Tensor | None:
        """Quote's tokens for this batch, or None when no row is a Quote request."""
        step = self._step
        if step is None:
            return None
        step.forwarded_ns = time.time_ns()
        if rids is not None and list(rids) != [r.rid for r in step.reqs]:
            raise RuntimeError("the sampled batch is not the batch the scheduler launched")
        step.rows = [self._row(req) for req in step.reqs]
        if not any(row is not None for row in step.rows):
            return None
        protected = [int(getattr(req, "cache_protected_len", 0)) for req in step.reqs]
        options = StepOptions(decode=step.decode, allow_trim=self.allow_trim, page_size=self.page_size)
        out = self.runner.run(logits, step.rows, protected, options)
        for req, row, plan in zip(step.reqs, step.rows, out.plans):
            if row is None or plan is None:
                continue
            self._count(plan)
            if plan.kind is SyncKind.FINISH:
                self.ops.finish(req, row.gen.finish_reason or "stop")
        return _to_device(out.emit, logits.device)

    def _row(self, req: Any) -> TrackedRequest | None:
        tracked = self.table.get(req.rid)
        if tracked is None or req.is_retracted or getattr(req, "inflight_middle_chunks", 0) > 0:
            return None
        return tracked

    def _count(self, plan: SyncPlan) -> None:
        if plan.rollback:
            self.stats.rollbacks += 1
            self.stats.tokens_rolled_back += plan.rollback

    def foreign_rows(self) -> list[int]:
        """Rows of the current step that are not Quote requests (SGLang samples those)."""
        if self._step is None:
            return []
        return [i for i, req in enumerate(self._step.reqs) if req.rid not in self.table]

    def after_result(self, scheduler: Any, batch: Any) -> None:
        """SGLang processed the batch: apply plans, notice its own finishes, publish snapshots."""
        step, self._step = self._step, None
        if step is None:
            return
        ended = time.time_ns()
        edits: list[tuple[int, Any, SyncPlan]] = []
        touched: list[TrackedRequest] = []
        for row, req in enumerate(step.reqs):
            tracked = step.rows[row] if step.rows else self.table.get(req.rid)
            if tracked is None:
                continue
            plan, tracked.plan = tracked.plan, None
            touched.append(tracked)
            if req.finished():
                self.released(req.rid, req.finished_reason)
            elif plan is not None and plan.kind in (SyncKind.TRIM, SyncKind.REQUEUE):
                edits.append((row, req, plan))
        if edits:
            self.ops.apply_after_result(scheduler, batch, edits)
        for tracked in touched:
            self.host.publish(tracked.live, forwarded_ns=step.forwarded_ns or ended, ended_ns=ended)

    # ----- SGLang lets go of a request ----------------------------------------------------------
    def released(self, rid: str, reason: Any) -> None:
        """SGLang finished or aborted `rid`; a generation it ended on its own learns why."""
        tracked = self.table.release(rid)
        if tracked is None:
            return
        self.stats.sequences_removed += 1
        gen = tracked.gen
        if gen.finished:
            return
        info = _reason(reason)
        if info.get("type") == "length":
            gen.finish("length")
        else:
            message = str(info.get("message") or info.get("matched") or "the engine ended the request")
            self.host.fail(tracked.live, f"SGLang ended the request: {message}", "engine_error")
            return
        self.host.publish(tracked.live, forwarded_ns=time.time_ns(), ended_ns=time.time_ns())

    def on_stream(self, reqs: Sequence[Any]) -> list[Any]:
        """SGLang is about to stream `reqs`: Quote's are handled here; returns the others."""
        foreign = []
        for req in reqs:
            if req.rid not in self.table:
                foreign.append(req)
            elif req.finished() and self._step is None:
                self.released(req.rid, req.finished_reason)  # finished outside a batch (bad input)
        return foreign

    def on_output(self, output: Any) -> None:
        """Something SGLang sends to the tokenizer; an abort of a Quote request ends it."""
        rid = getattr(output, "rid", None)
        if type(output).__name__ == "AbortReq" and isinstance(rid, str) and rid in self.table:
            self.released(rid, getattr(output, "finished_reason", None) or {"type": "abort"})


def _reason(reason: Any) -> dict[str, Any]:
    if reason is None:
        return {}
    if isinstance(reason, dict):
        return reason
    to_json = getattr(reason, "to_json", None)
    return dict(to_json()) if callable(to_json) else {"message": str(reason)}


def _to_device(tokens: list[int], device: torch.device) -> torch.Tensor:
    host = torch.tensor(tokens, dtype=torch.int64)
    if device.type == "cuda":
        host = host.pin_memory()
    return host.to(device, non_blocking=True)
