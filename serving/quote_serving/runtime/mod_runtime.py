"""ModRuntime: continuous batching of requests, each bound to its own mod, on one engine backend.

Data flow (one engine thread):

    submit() ─► pending queue ─► admit: Generation.prefill() (Prefilled, adjust_prefill)
                                   │
      ┌────────────── step ────────┴──────────────────────────────────────────────┐
      │ sync each request's tokens into the backend (rollback / extend)           │
      │ backend.forward(all live ids) → one logits row per request                │
      │ Generation.forward_pass(row) → mod's ForwardPass action → sample plan     │
      │ sample all plans in one batched call → Generation.sampled() → Sampled/Added│
      │ publish a Snapshot per request; finished ones leave the batch             │
      └────────────────────────────────────────────────────────────────────────────┘

Each request carries `RequestTimings` (stamped here: a few integers per step) and the runtime
tells its `observers` (tracing, metrics; see `runtime/observers.py`) when a request is
submitted, admitted, has its first token, and is finished.

Requests join and leave between steps. A mod only ever sees its own request's events (each
`Generation` holds its own mod); a mod failure ends only its own request (the SDK loop turns it
into an error); mod calls run under `ModBudget`. The runtime knows nothing about HTTP.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from quote_mod_sdk.generation import Generation, ModInvoker
from quote_serving.engine.port import EngineBackend, EngineError
from quote_serving.engine.sampling import SamplingParams, sample
from quote_serving.runtime.budget import ModBudget
from quote_serving.runtime.dispatch import StragglerPolicy, wait_for_step
from quote_serving.runtime.observers import RuntimeObserver, notify
from quote_serving.runtime.requests import RequestHandle, Snapshot
from quote_serving.runtime.rows import BadRow, checked_row
from quote_serving.runtime.traces import StoredTrace, TraceStore

__all__ = ["LiveRequest", "ModRuntime", "RuntimeSettings"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeSettings:
    max_batch: int = 32  # live requests sharing one forward; more wait in the queue
    mod_budget_ms: float = 2000.0  # per mod call; generous because the first call may compile a strategy
    idle_wait_s: float = 0.05
    stragglers: StragglerPolicy = field(default_factory=StragglerPolicy)  # isolated mods: waiting for slow calls


@dataclass
class _Live:
    gen: Generation
    handle: RequestHandle
    sampling: SamplingParams
    generator: torch.Generator | None
    model: str
    added: bool = False
    # Isolated mods: this request's mod call in flight on the call pool, and which phase it is.
    call: cf.Future[Any] | None = None
    phase: str = ""  # "plan" (ForwardPass) or "added" (Sampled/Added)
    forwarded_ns: int = 0


LiveRequest = _Live  # one admitted request, as the public lifecycle hands it to backends


class ModRuntime:
    """Owns the engine thread; `submit` is thread-safe and returns immediately."""

    def __init__(
        self,
        backend: EngineBackend,
        tokenizer: Any,
        *,
        model_name: str,
        settings: RuntimeSettings | None = None,
        traces: TraceStore | None = None,
        observers: Sequence[RuntimeObserver] = (),
    ) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.settings = settings or RuntimeSettings()
        self.traces = traces or TraceStore()
        self.budget = ModBudget(self.settings.mod_budget_ms)
        self.observers: list[RuntimeObserver] = list(observers)  # append before start()
        self._pending: queue.SimpleQueue[RequestHandle] = queue.SimpleQueue()
        self._live: dict[str, _Live] = {}
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._supervised, name="quote-engine", daemon=True)
        self._dead = threading.Event()
        # Called once if the engine loop ever dies (the replica is then not ready); the server sets
        # it to exit the process so its supervisor restarts it.
        self.on_fatal: Callable[[], None] | None = None
        # Out-of-process mods (`mod_isolation=process`): the invoker of one request's mod calls,
        # e.g. `ModWorkerPool.invoker(tenant)`; None: inline on this thread under `budget`.
        self.invoker_for: Callable[[RequestHandle], ModInvoker] | None = None
        self.mod_pool: Any = None  # the `ModWorkerPool` behind invoker_for, if any (respawn metrics)
        self.steps = 0
        self._calls: cf.ThreadPoolExecutor | None = None  # isolated mods: one thread per in-flight call
        self._row_device: torch.device | None = None

    # ----- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.budget.close()
        if self._calls is not None:
            self._calls.shutdown(wait=False, cancel_futures=True)

    @property
    def healthy(self) -> bool:
        return self._thread.is_alive() and not self._stopped.is_set() and not self._dead.is_set()

    @property
    def load(self) -> int:
        return len(self._live) + self._pending.qsize()

    def submit(self, handle: RequestHandle) -> RequestHandle:
        if self._dead.is_set():  # nobody would ever step it: answer now instead of hanging
            handle.publish(_failed("the engine is not running; the request was not started"))
            return handle
        handle.timings.submitted_ns = time.time_ns()
        if self.observers:  # before the engine can see it: observers capture the caller's context
            notify(self.observers, "on_submitted", handle)
        self._pending.put(handle)
        self._wake.set()
        if self._dead.is_set():  # the loop died while we queued it: nobody else will drain it
            self._abandon_all("the engine is not running; the request was not started")
        return handle

    # ----- engine thread -----------------------------------------------------------------------
    def _supervised(self) -> None:
        """The engine thread: nothing a request or mod raises ends it; if it ever does end, the
        replica turns not ready, every request still here fails, and `on_fatal` runs."""
        try:
            self._run()
        except BaseException:
            logger.critical("the engine loop died", exc_info=True)
        finally:
            if not self._stopped.is_set():
                self._dead.set()
                logger.critical("engine loop of %s ended; the replica is no longer ready", self.model_name)
                self._abandon_all("the engine stopped; the request was not completed")
                if self.on_fatal is not None:
                    self.on_fatal()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._admit()
                if not self._live:
                    self._wake.wait(self.settings.idle_wait_s)
                    self._wake.clear()
                    continue
                self.step()
            except BaseException:  # request-scoped blast radius: fail the batch, keep the loop
                logger.exception("engine step failed; failing the %d live requests", len(self._live))
                for live in list(self._live.values()):
                    self.fail(live, "internal engine error; the request was not completed", "engine_error")

    def _admit(self) -> None:
        while len(self._live) < self.settings.max_batch and self.admit_next() is not None:
            pass

    # ----- the per-request lifecycle every backend drives (admit, step, complete, fail) ----------
    def admit_next(self) -> _Live | None:
        """Take the next queued request and run its prefill; None when the queue is empty.

        The request joins the batch unless Prefilled already ended it (then it is completed here).
        Anything that goes wrong while admitting one request fails that request only.
        """
        while True:
            try:
                handle = self._pending.get_nowait()
            except queue.Empty:
                return None
            if handle.cancelled:
                continue
            try:
                live = self._start(handle)
            except BaseException as exc:
                logger.exception("request %s could not be admitted", handle.request_id)
                handle.publish(_failed(f"the request could not be started ({type(exc).__name__})"))
                continue
            if self.observers:
                notify(self.observers, "on_admitted", handle)
            if live.gen.finished:
                self.complete(live)
            else:
                self._live[handle.request_id] = live
            return live

    def _abandon_all(self, message: str) -> None:
        """The dead loop's last act: answer every waiting client directly (no backend, no mods)."""
        handles = [live.handle for live in self._live.values()]
        self._live.clear()
        while True:
            try:
                handles.append(self._pending.get_nowait())
            except queue.Empty:
                break
        for handle in handles:
            with contextlib.suppress(Exception):
                handle.publish(_failed(message))

    def live_requests(self) -> list[_Live]:
        """The requests in the batch now (admitted, not completed)."""
        return list(self._live.values())

    def fail_all(self, message: str) -> None:
        """Fail every live and every queued request (the engine cannot go on)."""
        for live in list(self._live.values()):
            self.fail(live, message, "engine_error")
        while True:
            try:
                handle = self._pending.get_nowait()
            except queue.Empty:
                return
            handle.publish(_failed(message))

    def _start(self, handle: RequestHandle) -> _Live:
        req = handle.request
        gen = Generation(
            request_id=req.request_id,
            prompt_tokens=req.prompt_tokens,
            tokenizer=self.tokenizer,
            vocab_size=self.backend.vocab_size,
            mod=req.mod,
            params=req.params,
            messages=req.messages,
            invoke=self.budget if self.invoker_for is None else self.invoker_for(handle),
        )
        handle.timings.admitted_ns = time.time_ns()
        gen.prefill()
        return _Live(gen, handle, req.sampling, req.sampling.new_generator(), self.model_name)

    def step(self) -> None:
        """One engine step of the whole batch on the `EngineBackend` (sync, forward, mods, sample)."""
        if self.invoker_for is not None:
            self._step_isolated()
            return
        lives = [live for live in list(self._live.values()) if not self._drop_cancelled(live)]
        lives = [live for live in lives if self._sync(live)]
        if not lives:
            return
        for live in lives:
            live.gen.low_water = len(live.gen.output)
        logits = self.backend.forward([live.gen.request_id for live in lives])
        forwarded = time.time_ns()
        self.steps += 1
        plans = [(live, self._guarded(live, live.gen.forward_pass, logits[i])) for i, live in enumerate(lives)]
        to_sample = [(live, plan) for live, plan in plans if plan is not None and not live.gen.finished]
        if to_sample:
            self._sample(to_sample, logits.shape[-1], logits.device)
        ended = time.time_ns()
        for live in lives:
            if self._live.get(live.gen.request_id) is not live:
                continue  # already completed this step (e.g. failed for an unusable logits row)
            self.record_step(live, forwarded, ended)
            if live.gen.finished:
                self.complete(live)
            else:
                live.handle.publish(self.snapshot(live))

    def record_step(self, live: _Live, forwarded: int, ended: int) -> None:
        """Record when this step ended (and, the first time, prefill and first token)."""
        timings = live.handle.timings
        timings.step_end_ns.append(ended)
        if timings.prefilled_ns is None:
            timings.prefilled_ns = forwarded
        if timings.first_token_ns is None and live.gen.output:
            timings.first_token_ns = ended
            if self.observers:
                notify(self.observers, "on_first_token", live.handle)

    def _sync(self, live: _Live) -> bool:
        """Bring the backend's copy of this sequence up to the request's tokens."""
        rollback, tokens = live.gen.take_sync()
        try:
            if not live.added:
                self.backend.add_sequence(live.gen.request_id, tokens)
                live.added = True
                return True
            if rollback:
                self.backend.rollback(live.gen.request_id, rollback)
            if tokens:
                self.backend.extend(live.gen.request_id, tokens)
        except EngineError as exc:
            self.fail(live, str(exc), "engine_error")
            return False
        return True

    def _sample(self, batch: list[tuple[_Live, Any]], vocab: int, device: torch.device) -> None:
        for live, token, logprob in self._sampled_tokens(batch, vocab, device):
            self._guarded(live, live.gen.sampled, token, logprob)

    def _sampled_tokens(
        self, batch: list[tuple[_Live, Any]], vocab: int, device: torch.device
    ) -> list[tuple[_Live, int, float]]:
        """One batched sampling call over the plans' rows; a request with an unusable row fails alone."""
        rows, params, kept = [], [], []
        for live, plan in batch:
            try:  # a hostile row fails its own request, never the batch's sampling call
                rows.append(checked_row(plan.logits, vocab, device))
            except BadRow as exc:
                self.fail(live, f"mod {_mod_name(live)!r} returned unusable logits: {exc}", "invalid_action")
                continue
            temp = plan.temperature
            params.append(live.sampling if temp is None else _with_temperature(live.sampling, temp))
            kept.append((live, plan))
        if not kept:
            return []
        result = sample(torch.stack(rows), params, [live.generator for live, _ in kept])
        return [(live, token, logprob) for (live, _), token, logprob in zip(kept, result.tokens, result.logprobs)]

    # ----- isolated mods: each phase's calls in parallel, stragglers sit out (runtime/dispatch.py)
    def _step_isolated(self) -> None:
        """One step when mods run in workers: harvest answers that came in, forward the requests
        whose mods have answered, dispatch their ForwardPass calls together, sample what is
        answered, dispatch the Sampled/Added calls together. A request whose call is still in
        flight skips the forward; nothing here ever waits on one slow mod for long."""
        lives = list(self._live.values())
        to_sample: list[tuple[_Live, Any]] = []
        for live in lives:
            if live.call is not None and live.call.done():
                self._harvest(live, to_sample)
        waiting = {id(live) for live, _ in to_sample}  # answered plans: sampled below, never forwarded again first
        idle = [live for live in lives if id(live) not in waiting and self._is_idle(live)]
        idle = [live for live in idle if not self._drop_cancelled(live) and self._sync(live)]
        if idle:
            for live in idle:
                live.gen.low_water = len(live.gen.output)
            logits = self.backend.forward([live.gen.request_id for live in idle])
            forwarded, self._row_device = time.time_ns(), logits.device
            self.steps += 1
            for i, live in enumerate(idle):
                live.forwarded_ns = forwarded
                self._dispatch(live, "plan", live.gen.forward_pass, logits[i])
            self._wait_and_harvest(idle, to_sample)
        elif not to_sample:  # every live request's mod is busy: wait for one answer (or a new request)
            busy = [live.call for live in lives if live.call is not None]
            if busy:
                cf.wait(busy, timeout=self.settings.idle_wait_s, return_when=cf.FIRST_COMPLETED)
            return
        if not to_sample:
            return
        device = self._row_device or torch.device("cpu")
        sampled = self._sampled_tokens(to_sample, self.backend.vocab_size, device)
        for live, token, logprob in sampled:
            self._dispatch(live, "added", live.gen.sampled, token, logprob)
        self._wait_and_harvest([live for live, _, _ in sampled], to_sample)

    def _is_idle(self, live: _Live) -> bool:
        return live.call is None and self._live.get(live.gen.request_id) is live

    def call_pool(self) -> cf.ThreadPoolExecutor:
        """The threads isolated mod calls wait on (one per request in flight), made on first use;
        every backend that dispatches a step's calls at once uses this one."""
        if self._calls is None:
            self._calls = cf.ThreadPoolExecutor(max(self.settings.max_batch, 1), thread_name_prefix="quote-mod-call")
        return self._calls

    def _dispatch(self, live: _Live, phase: str, call: Callable[..., Any], *args: Any) -> None:
        live.phase, live.call = phase, self.call_pool().submit(call, *args)

    def _wait_and_harvest(self, lives: list[_Live], to_sample: list[tuple[_Live, Any]]) -> None:
        calls = [live.call for live in lives if live.call is not None]
        wait_for_step(calls, self.settings.stragglers, self.settings.idle_wait_s)
        for live in lives:
            if live.call is not None and live.call.done():
                self._harvest(live, to_sample)

    def _harvest(self, live: _Live, to_sample: list[tuple[_Live, Any]]) -> None:
        """Take one finished call: a ForwardPass plan joins `to_sample`; a finished Sampled/Added
        call (or a plan that ends the request) ends the request's step."""
        call, phase = live.call, live.phase
        live.call = None
        if call is None or self._live.get(live.gen.request_id) is not live:
            return  # completed meanwhile (e.g. failed by the engine)
        error = call.exception()
        if error is not None:  # Generation turns mod failures into its own error; this is anything else
            logger.warning("request %s failed inside its step", live.gen.request_id, exc_info=error)
            self.fail(live, f"mod {_mod_name(live)!r} broke its request ({type(error).__name__})", "exception")
            return
        plan = call.result()
        if phase == "plan" and plan is not None and not live.gen.finished:
            to_sample.append((live, plan))
            return
        self.record_step(live, live.forwarded_ns, time.time_ns())
        if live.gen.finished:
            self.complete(live)
        else:
            live.handle.publish(self.snapshot(live))

    def _guarded(self, live: _Live, call: Callable[..., Any], *args: Any) -> Any:
        """Run one request's part of the step; whatever it raises fails that request only."""
        try:
            return call(*args)
        except BaseException as exc:  # e.g. a mod's object whose methods raise outside the budget
            logger.warning("request %s failed inside its step", live.gen.request_id, exc_info=True)
            if self._live.get(live.gen.request_id) is live:
                self.fail(live, f"mod {_mod_name(live)!r} broke its request ({type(exc).__name__})", "exception")
            return None

    def _drop_cancelled(self, live: _Live) -> bool:
        if live.handle.cancelled:
            live.gen.finish("abort")
            self.complete(live)
            return True
        return False

    # ----- completion --------------------------------------------------------------------------
    def fail(self, live: _Live, message: str, kind: str) -> None:
        """End one request with an error the client sees (`kind`: e.g. `engine_error`)."""
        live.gen.error = None
        live.gen.trace.error = message
        live.gen.finish("error")
        self.complete(live, error=(message, kind))

    def complete(self, live: _Live, error: tuple[str, str] | None = None) -> None:
        """Let the request leave the batch: free its sequence, store its trace, publish the end."""
        self._live.pop(live.gen.request_id, None)
        if live.added:
            with contextlib.suppress(EngineError):
                self.backend.remove_sequence(live.gen.request_id)
        tenant = live.handle.request.tenant
        live.handle.timings.finished_ns = time.time_ns()
        self.traces.put(StoredTrace(live.gen.trace, live.model, tenant, time.time()))
        live.handle.trace = live.gen.trace
        if self.observers:  # before publishing: a client that has its answer finds it counted
            kind = error[1] if error else (live.gen.error.kind if live.gen.error else None)
            notify(self.observers, "on_finished", live.handle, live.gen.trace, kind)
        live.handle.publish(self.snapshot(live, error))

    @staticmethod
    def _logprobs(live: _Live, records: list[Any]) -> tuple[tuple[float | None, tuple[tuple[int, float], ...]], ...]:
        return _top(records, live.sampling.top_logprobs) if live.handle.request.logprobs else ()

    def snapshot(self, live: _Live, error: tuple[str, str] | None = None) -> Snapshot:
        """What the client sees of the request now."""
        gen = live.gen
        if error is None and gen.error is not None:
            error = (str(gen.error), gen.error.kind)
        records = [r for r in gen.trace.tokens if not r.erased]
        return Snapshot(
            output=tuple(gen.output),
            low_water=gen.low_water,
            finished=gen.finished,
            finish_reason=gen.finish_reason,
            error=None if error is None else error[0],
            error_kind=None if error is None else error[1],
            tool_calls=gen.tool_calls,
            logprobs=self._logprobs(live, records),
            prompt_tokens=len(gen.prompt),
            text=gen.text() if gen.finished else None,
        )


def _mod_name(live: _Live) -> str:
    mod = live.handle.request.mod
    return mod.name if mod is not None else "<none>"


def _failed(message: str) -> Snapshot:
    return Snapshot(finished=True, finish_reason="error", error=message, error_kind="engine_error")


def _top(records: list[Any], k: int) -> tuple[tuple[float | None, tuple[tuple[int, float], ...]], ...]:
    return tuple((r.logprob, tuple(r.top_logprobs[:k])) for r in records)


def _with_temperature(params: SamplingParams, temperature: float) -> SamplingParams:
    return SamplingParams(
        temperature=temperature,
        top_p=params.top_p,
        top_k=params.top_k,
        seed=params.seed,
        top_logprobs=params.top_logprobs,
    )
