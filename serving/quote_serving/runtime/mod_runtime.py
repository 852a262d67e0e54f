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
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from quote_mod_sdk.generation import Generation, ModInvoker
from quote_serving.engine.cpu_threads import engine_threads
from quote_serving.engine.port import EngineBackend, EngineError
from quote_serving.engine.sampling import Guess, SamplingParams, sample, sample_ahead
from quote_serving.runtime.budget import ModBudget
from quote_serving.runtime.dispatch import StragglerPolicy
from quote_serving.runtime.mod_calls import ModCalls, Ticket, drop_chain, wait_for
from quote_serving.runtime.mod_steps import Job
from quote_serving.runtime.observers import RuntimeObserver, notify
from quote_serving.runtime.requests import LoopWakes, RequestHandle, Snapshot
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
    # Isolated mods: this request's steps in progress (a `Generation` steps generator driven by
    # its answers, `mod_steps.Job`), and which phase it is.
    job: Job | None = None
    phase: str = ""  # "plan" (ForwardPass) or "added" (Sampled/Added)
    forwarded_ns: int = 0
    # Isolated mods, running ahead: the token the backend already holds beyond what the request has
    # committed (its Sampled/Added answers are still out), and the logits row it led to.
    ahead: tuple[int, Any] | None = None
    ahead_ns: int = 0
    next_row: Any = None  # the ahead row, once the answers confirmed its token: the next ForwardPass
    guess: Guess | None = None  # sampled from `next_row` before its mod answered ForwardPass

    @property
    def ticket(self) -> Ticket | None:
        """The call its steps wait on, if any."""
        return self.job.ticket if self.job is not None else None


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
        # Isolated mods: where the isolated step sends its calls without waiting, e.g. the
        # `ModWorkerPool`; None: the inline step.
        self.mod_calls: ModCalls | None = None
        self.steps = 0
        self._calls: cf.ThreadPoolExecutor | None = None  # `call_pool()`: blocking mod calls run at once
        self._row_device: torch.device | None = None
        self._wakes = LoopWakes()  # clients woken once per step (`requests.LoopWakes`)

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
            engine_threads()  # torch's threads as this thread should have them (engine/cpu_threads.py)
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
                with self._wakes.held():
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
        if self.mod_calls is not None:
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
                live.handle.publish(self.snapshot(live), self._wakes)

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

    # ----- isolated mods: each phase's calls in flight at once, stragglers sit out --------------
    # (runtime/dispatch.py: the waiting rule; runtime/mod_calls.py: the calls on each worker)
    def _step_isolated(self) -> None:
        """One step when mods run in workers: take answers that came in; for each request whose
        answers let its last token stand (its row is already forwarded), sample that row as if
        its mod will answer ForwardPass with noop and send ForwardPass, Sampled and Added in one
        frame; forward those tokens (running ahead) together with the requests that need a plain
        forward, whose ForwardPass calls go out next; sample what the mods planned otherwise and
        send those Sampled calls (each with its Added). A request whose call is still in flight
        skips the forward; nothing here ever waits on one slow mod for long. All on this thread:
        a request's steps are a generator (`Generation.forward_pass_steps`) driven by its
        answers as they come."""
        lives = list(self._live.values())
        to_sample: list[tuple[_Live, Any]] = []
        busy = [live.ticket for live in lives if live.ticket is not None]
        if busy:
            wait_for(busy, 0.0)  # take what came in; a call past its budget fails here
        for live in lives:
            self._advance(live, to_sample)
        waiting = {id(live) for live, _ in to_sample}  # answered plans: sampled below, never forwarded again first
        idle = [live for live in lives if id(live) not in waiting and self._is_idle(live)]
        idle = [live for live in idle if not self._drop_cancelled(live)]
        ready = [live for live in idle if live.next_row is not None]  # forwarded while their mods answered
        behind = [live for live in idle if live.next_row is None]
        self._guess(ready)
        for live in ready:  # their calls go out first: the workers answer while the batch is forwarded
            row, live.next_row = live.next_row, None
            then = live.gen.after_noop_forward_pass(live.guess.token) if live.guess is not None else ()
            self._start_plan(live, row, live.ahead_ns, to_sample, then)
        behind = [live for live in behind if self._live.get(live.gen.request_id) is live and self._sync(live)]
        guessed = [(live, live.guess.token) for live in ready if live.guess is not None and live.job is not None]
        self._run_ahead(guessed, to_sample, behind)
        if ready or behind:
            self._wait_phase(ready + behind, to_sample)
        elif not to_sample:  # every live request's mod is busy: wait for one answer (or a new request)
            busy = [live.ticket for live in lives if live.ticket is not None]
            if busy:
                self._wakes.flush()
                wait_for(busy, self.settings.idle_wait_s, first=True)
            return
        if not to_sample:
            return
        device = self._row_device or torch.device("cpu")
        sampled = self._sampled_tokens(to_sample, self.backend.vocab_size, device)
        for live, token, logprob in sampled:
            added = (live.gen.added_after_sampled(token),)
            live.phase, live.job = "added", Job(live.gen.sampled_steps(token, logprob), self._submitter(live), added)
            self._advance(live, to_sample)
        pending = [(live, token) for live, token, _ in sampled if live.job is not None and live.ahead is None]
        self._run_ahead(pending, to_sample)
        self._wait_phase([live for live, _, _ in sampled], to_sample)

    def _forward(self, lives: list[_Live]) -> tuple[torch.Tensor, int]:
        """One model call over `lives`: their rows, and when it ended."""
        logits = self.backend.forward([live.gen.request_id for live in lives])
        self._row_device = logits.device
        self.steps += 1
        return logits, time.time_ns()

    def _start_plan(
        self, live: _Live, row: Any, forwarded_ns: int, to_sample: list[tuple[_Live, Any]], then: Sequence[Any] = ()
    ) -> None:
        live.gen.low_water = len(live.gen.output)
        live.forwarded_ns, live.phase = forwarded_ns, "plan"
        live.job = Job(live.gen.forward_pass_steps(row), self._submitter(live), then)
        self._advance(live, to_sample)

    def _guess(self, lives: list[_Live]) -> None:
        """Sample each request's forwarded row as if its mod will answer ForwardPass with noop (what
        nearly every answer says), so the whole step goes to its worker in one frame and the token
        is forwarded at once. `_phase_done` keeps the guess when the answer is noop (the plan is
        then that very row, so the draw is the one the step would make); otherwise it restores the
        generator and samples what the mod planned."""
        mine = [live for live in lives if live.gen.mod is not None and not live.gen.finished]
        if not mine:
            return
        with torch._C.DisableTorchFunctionSubclass():  # the engine's own rows (`LogitsTensor` views)
            rows = torch.stack([live.next_row for live in mine]).float()
        if rows.shape[-1] != self.backend.vocab_size or not _samplable(rows):
            return  # the plain path samples them and fails the requests whose row is unusable
        guesses = sample_ahead(rows, [live.sampling for live in mine], [live.generator for live in mine])
        for live, guess in zip(mine, guesses):
            live.guess = guess

    @staticmethod
    def _drop_guess(live: _Live) -> None:
        guess, live.guess = live.guess, None
        if guess is not None:
            guess.rewind(live.generator)  # as if it had never drawn

    def _run_ahead(
        self, pending: list[tuple[_Live, int]], to_sample: list[tuple[_Live, Any]], behind: Sequence[_Live] = ()
    ) -> None:
        """While their answers are out, forward each pending request as if its mod lets the token
        stand (what nearly every answer says): the workers' round trips hide behind the forward.
        `_settle_ahead` keeps the row when the answers agree, else rolls it back. `behind`
        (requests that need a plain forward) join the same model call; their ForwardPass calls go
        out when it ends."""
        ahead: list[_Live] = []
        for live, token in pending:
            try:
                self.backend.extend(live.gen.request_id, [token])
            except EngineError:
                continue  # the request's normal sync meets the same error and fails it
            live.ahead = (token, None)
            ahead.append(live)
        if not ahead and not behind:
            return
        logits, forwarded = self._forward(ahead + list(behind))
        for i, live in enumerate(ahead):
            assert live.ahead is not None
            live.ahead, live.ahead_ns = (live.ahead[0], logits[i]), forwarded
            if live.job is None:  # its answers were all in already
                self._settle_ahead(live)
        for i, live in enumerate(behind, len(ahead)):
            self._start_plan(live, logits[i], forwarded, to_sample)

    def _settle_ahead(self, live: _Live) -> None:
        """The request's step is over: keep the row it ran ahead to if it committed exactly that
        token (and nothing else changed), else take the token back out of the backend."""
        if live.ahead is None or live.ahead[1] is None:
            return  # not forwarded yet (`_run_ahead` settles it after its forward)
        (token, row), live.ahead = live.ahead, None
        if not live.gen.finished and live.gen.peek_sync() == (0, [token]):
            live.gen.take_sync()  # the backend holds it already
            live.next_row = row
            return
        if self._live.get(live.gen.request_id) is live:
            try:
                self.backend.rollback(live.gen.request_id, 1)
            except EngineError as exc:
                self.fail(live, str(exc), "engine_error")

    def _is_idle(self, live: _Live) -> bool:
        return live.job is None and self._live.get(live.gen.request_id) is live

    def call_pool(self) -> cf.ThreadPoolExecutor:
        """Threads for in-process invokers run like worker calls (`dispatch.ThreadedCalls`: the
        conformance suite's isolated step with recording mods), made on first use."""
        if self._calls is None:
            self._calls = cf.ThreadPoolExecutor(max(self.settings.max_batch, 1), thread_name_prefix="quote-mod-call")
        return self._calls

    def _wait_phase(self, lives: list[_Live], to_sample: list[tuple[_Live, Any]]) -> None:
        """Wait for the phase's answers as `dispatch.StragglerPolicy` rules, driving each request's
        steps as its answers come (an answer may lead to another call, e.g. Added after a force)."""
        policy, started = self.settings.stragglers, time.monotonic()
        grace_until: float | None = None
        asked = [live for live in lives if live.ticket is not None]  # requests without a mod are done
        while True:
            pending = [
                live for live in asked if live.ticket is not None and self._live.get(live.gen.request_id) is live
            ]
            if not pending:
                return
            now = time.monotonic()
            if grace_until is None:
                if len(pending) < len(asked):  # the first answers are in
                    grace_until = now + policy.grace(now - started)
                elif now - started >= self.settings.idle_wait_s:
                    return
            if grace_until is not None and now >= grace_until:
                return
            until = grace_until if grace_until is not None else started + self.settings.idle_wait_s
            self._wakes.flush()  # about to wait: the requests already answered reach their clients now
            wait_for([live.ticket for live in pending if live.ticket is not None], until - now, first=True)
            for live in pending:
                self._advance(live, to_sample)

    def _advance(self, live: _Live, to_sample: list[tuple[_Live, Any]]) -> None:
        """Drive one request's steps as far as its answers allow (`mod_steps.Job.advance`: each
        answer sent in, each next event sent to its worker or taken from the calls sent ahead);
        when the steps return, the phase is done (`_phase_done`)."""
        job = live.job
        if job is None or (job.ticket is not None and not job.ticket.done):
            return
        if self._live.get(live.gen.request_id) is not live:
            self._forget(live)
            return
        job.advance()
        if not job.done:
            return
        live.job = None
        if job.error is not None:  # nothing a request's steps raise ends the step for others
            logger.warning("request %s failed inside its step", live.gen.request_id, exc_info=job.error)
            if self._live.get(live.gen.request_id) is live:
                self.fail(live, f"mod {_mod_name(live)!r} broke its request ({type(job.error).__name__})", "exception")
            return
        # A ForwardPass answered noop: the Sampled and Added sent with it (`kept`) still apply.
        self._phase_done(live, job.result, to_sample, job.kept)

    def _submitter(self, live: _Live) -> Callable[[Any, Sequence[Any]], Ticket]:
        return functools.partial(self._submit, live)

    def _submit(self, live: _Live, event: Any, then: Sequence[Any]) -> Ticket:
        assert self.mod_calls is not None and live.gen.mod is not None  # steps yield only with a mod
        conversation = (live.gen.messages or [], live.gen.tools or [])
        tenant = live.handle.request.tenant or ""
        return self.mod_calls.submit(tenant, live.gen.mod, event, conversation=conversation, then=then)

    def _forget(self, live: _Live) -> None:
        """The request's steps are abandoned: answers still owed are dropped on arrival."""
        job, live.job = live.job, None
        if job is not None:
            job.abandon()

    def _phase_done(
        self, live: _Live, result: Any, to_sample: list[tuple[_Live, Any]], kept: Ticket | None = None
    ) -> None:
        """A phase's steps returned. A ForwardPass plan: if the mod answered noop and the row was
        sampled ahead (`_guess`), the Sampled phase starts with that token, its calls already sent
        (`kept`); otherwise the plan joins `to_sample`. Any other end (the Sampled phase, or a plan
        that ends the request) ends the request's step."""
        if self._live.get(live.gen.request_id) is not live:
            drop_chain(kept)
            return  # completed meanwhile (e.g. failed by the engine)
        if live.phase == "plan" and result is not None and not live.gen.finished:
            guess = live.guess
            if guess is not None and kept is not None:
                live.guess = None
                steps = live.gen.sampled_steps(guess.token, guess.logprob)
                live.phase, live.job = "added", Job(steps, self._submitter(live), follow=kept)
                self._advance(live, to_sample)
                return
            drop_chain(kept)
            self._drop_guess(live)
            to_sample.append((live, result))
            return
        drop_chain(kept)
        self._drop_guess(live)
        self._settle_ahead(live)
        self.record_step(live, live.forwarded_ns, time.time_ns())
        if live.gen.finished:
            self.complete(live)
        else:
            live.handle.publish(self.snapshot(live), self._wakes)

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
        if live.job is not None:  # isolated mods: a call still in flight is answered to nobody
            with contextlib.suppress(ValueError):  # "generator already executing": it ends itself
                self._forget(live)
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
        live.handle.publish(self.snapshot(live, error), self._wakes)

    @staticmethod
    def _logprobs(live: _Live) -> tuple[tuple[float | None, tuple[tuple[int, float], ...]], ...]:
        if not live.handle.request.logprobs:  # the usual case: no walk over the whole output each step
            return ()
        return _top([r for r in live.gen.trace.tokens if not r.erased], live.sampling.top_logprobs)

    def snapshot(self, live: _Live, error: tuple[str, str] | None = None) -> Snapshot:
        """What the client sees of the request now."""
        gen = live.gen
        if error is None and gen.error is not None:
            error = (str(gen.error), gen.error.kind)
        return Snapshot(
            output=tuple(gen.output),
            low_water=gen.low_water,
            finished=gen.finished,
            finish_reason=gen.finish_reason,
            error=None if error is None else error[0],
            error_kind=None if error is None else error[1],
            tool_calls=gen.tool_calls,
            logprobs=self._logprobs(live),
            prompt_tokens=len(gen.prompt),
            text=gen.text() if gen.finished else None,
        )


def _samplable(rows: torch.Tensor) -> bool:
    """What `rows.checked_row` demands of each row, for the whole batch in one reduction: a row's
    max is finite unless it holds NaN or +inf, or every logit is -inf."""
    return bool(torch.isfinite(rows.amax(dim=-1)).all())


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
