"""Calls in flight on one mod worker, pipelined: frames go out in order, answers are matched in order.

    pool.submit ─► CallQueue.send(ticket, frame) ─► the worker's stdin (an outbox: never blocks)
    any thread  ─► CallQueue.pump() ─► frames from its stdout ─► the FIFO's head ticket, decoded
                   (a call sent with `then`: each noop answer is followed by the next event's)
    wait_for(tickets) ─► select on the workers' pipes, pump, until done / first done / timeout

A worker answers one frame at a time, in order, so a call's budget runs from when it reaches the
head of the FIFO (its predecessor answered, or it was sent to an idle worker); a head past its
deadline means the worker is stuck, and `pump` reports it so the pool kills the worker. Every
thread may pump (the engine thread, a caller waiting for its answer, the pool's monitor); the
queue's lock guards the FIFO and is never held while waiting.

The engine's step (`ModRuntime._step_isolated`) sends every request's call of a phase this way
and collects the answers as they come: one thread, no hand-off per call. Answers are decoded and
re-validated here (`mod_answers`), so a ticket's outcome is an action or the exception to raise.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import math
import select
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from quote_mod_sdk import actions as act
from quote_mod_sdk import events as ev
from quote_mod_sdk.errors import InvalidActionError, ModFailedError
from quote_mod_sdk.mod import Mod
from quote_serving.runtime.mod_answers import decode_action, returned_row
from quote_serving.runtime.mod_process import WorkerDied, WorkerProcess
from quote_serving.runtime.mod_protocol import encode_frame

__all__ = ["CallQueue", "ModCalls", "Ticket", "chain", "chained", "drop_chain", "wait_for"]


@dataclass(eq=False, slots=True)
class Ticket:
    """One answer the engine expects from a worker (a call's, or a bundle load's)."""

    name: str  # the mod's name, for errors
    event: ev.ModEvent | None  # None: a bundle load
    budget_s: float
    digest: str = ""
    expected: int = 0  # floats in the ForwardPass row: what a returned row must hold
    pair: int | None = None  # the slot pair its rows use, while it holds one
    paired: Ticket | None = None  # the next event of its chain (`then`), answered after a noop answer to this one
    discard: bool = False  # nobody waits for its answer (a Finished; an Added no longer needed)
    deadline: float = math.inf
    outcome: Any = None  # the action, or the exception its caller raises
    done: bool = False
    queue: CallQueue | None = None
    future: cf.Future[Any] | None = None  # in-process calls (`dispatch.ThreadedCalls`) settle through it

    def result(self) -> act.Action:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        action: act.Action = self.outcome
        return action

    def settle(self, outcome: Any) -> None:
        self.outcome, self.done = outcome, True


class ModCalls(Protocol):
    """Where the isolated step sends a mod call without waiting: `ModWorkerPool` (worker
    processes) or `dispatch.ThreadedCalls` (an in-process invoker on threads).

    `key`: the request's tenant. `conversation`: the request's (messages, tool schemas), for the
    first call of a request. `then`: the events a noop answer implies, in order (a ForwardPass's
    Sampled and Added for the token the engine sampled ahead; a Sampled's Added); the worker runs
    each while the one before it answers noop, and their answers come as the chain
    `ticket.paired`, `ticket.paired.paired`. Never raises: a failure is the ticket's outcome."""

    def submit(
        self,
        key: str,
        mod: Mod,
        event: ev.ModEvent,
        *,
        conversation: tuple[Any, Any] | None = None,
        then: Sequence[ev.ModEvent] = (),
    ) -> Ticket: ...


def chain(ticket: Ticket | None) -> Iterator[Ticket]:
    """`ticket` and the tickets chained after it (`paired`), in order."""
    while ticket is not None:
        yield ticket
        ticket = ticket.paired


def chained(name: str, events: Sequence[ev.ModEvent], budget_s: float, digest: str = "") -> Ticket | None:
    """The tickets for a call's `then` events, each `paired` to the next."""
    head: Ticket | None = None
    for event in reversed(events):
        head = Ticket(name, event, budget_s, digest=digest, paired=head)
    return head


def drop_chain(ticket: Ticket | None) -> None:
    """Nobody will read these answers (the engine sent another event instead)."""
    for follow in chain(ticket):
        follow.discard = True


def settled(name: str, outcome: Any) -> Ticket:
    """A ticket answered without a worker (an error before sending, a Finished nobody hears)."""
    ticket = Ticket(name, None, 0.0)
    ticket.settle(outcome)
    return ticket


class CallQueue:
    """The calls in flight on one worker process, in the order it answers them."""

    def __init__(self, proc: WorkerProcess, on_fail: Callable[[str, str], None]) -> None:
        self.proc = proc
        self.on_fail = on_fail  # (reason, why): the pool drops the worker (and calls `fail_all`)
        self.lock = threading.RLock()
        self.fifo: collections.deque[Ticket] = collections.deque()
        self.free_pairs = list(range(proc.slots.pairs))
        self.loaded: dict[str, str] = {}  # bundle digest → mod name (sent for loading)
        self.load_errors: dict[str, str] = {}  # digest → why its load failed
        self.busy_since: float | None = None
        self.busy_total = 0.0  # wall seconds with a call in flight, for the CPU monitor
        self.gone: str | None = None
        self.readers = 0  # threads selecting on its pipe now (`wait_for`): the monitor leaves it to them

    # ----- sending -----------------------------------------------------------------------------
    def send(self, ticket: Ticket, header: dict[str, Any], blob: bytes = b"", *, plain: bool = False) -> None:
        """Queue `ticket` (and the tickets chained after it) and post its frame (caller holds
        `lock`); `plain`: see `mod_protocol.encode_frame`."""
        now = time.monotonic()
        ticket.queue = self
        if not self.fifo:
            ticket.deadline = now + ticket.budget_s
            self.busy_since = now
        for each in chain(ticket):
            each.queue = self
            self.fifo.append(each)
        try:
            self.proc.post(encode_frame(header, blob, plain=plain))
        except WorkerDied as exc:
            self.on_fail(exc.reason, str(exc))

    def take_pair(self) -> int | None:
        return self.free_pairs.pop() if self.free_pairs else None

    def busy(self, now: float) -> float:
        """Wall seconds this worker has had a call in flight, up to `now`."""
        return self.busy_total + (now - self.busy_since if self.busy_since is not None else 0.0)

    # ----- receiving ---------------------------------------------------------------------------
    def pump(self) -> None:
        """Take every answer that came in, and report a stuck or dead worker; never blocks."""
        with self.lock:
            if self.gone is not None:
                return
            try:
                self.proc.flush()
                frames, ended = self.proc.frames()
            except WorkerDied as exc:
                self.on_fail(exc.reason, str(exc))
                return
            except Exception as exc:  # reading a worker's bytes failed in a way nobody foresaw: that
                # worker's fault alone, never the engine step's (which would fail every co-batched request)
                self.on_fail("protocol", f"its worker's answers could not be read ({type(exc).__name__})")
                return
            now = time.monotonic()
            for header, blob in frames:
                if not self.fifo:
                    self.on_fail("protocol", "its worker broke the protocol (an answer nobody asked for)")
                    return
                self._answered(self.fifo.popleft(), header, blob, now)
            if ended is not None:
                self.on_fail("died", ended)
            elif self.fifo and now > self.fifo[0].deadline:
                self.on_fail("timeout", "")

    def _answered(self, ticket: Ticket, header: dict[str, Any], blob: bytes, now: float) -> None:
        if ticket.paired is not None and not (header.get("ok") is True and header.get("action") == "noop"):
            for follow in chain(ticket.paired):  # the worker runs the next event only after a noop
                self.fifo.remove(follow)
                follow.settle(None)
                follow.discard = True
        if self.fifo:
            self.fifo[0].deadline = now + self.fifo[0].budget_s
        elif self.busy_since is not None:
            self.busy_total += now - self.busy_since
            self.busy_since = None
        try:
            ticket.settle(self._decode(ticket, header, blob))
        finally:
            if ticket.pair is not None:
                self.free_pairs.append(ticket.pair)
                ticket.pair = None

    def _decode(self, ticket: Ticket, header: dict[str, Any], blob: bytes) -> Any:
        if ticket.event is None:  # a load
            if not header.get("ok"):
                self.loaded.pop(ticket.digest, None)
                self.load_errors[ticket.digest] = str(header.get("error"))[:2000]
            return None
        if not header.get("ok"):
            message = str(header.get("error"))[:2000]
            if ticket.digest in self.load_errors:
                return ModFailedError(
                    f"mod {ticket.name!r} could not be loaded: {self.load_errors[ticket.digest]}",
                    mod=ticket.name,
                    kind="exception",
                )
            if header.get("kind") == "invalid_action":
                return InvalidActionError(message)
            return ModFailedError(f"mod {ticket.name!r} raised {message}", mod=ticket.name, kind="exception")
        try:
            logits = None
            if header.get("action") == "adjust_logits":
                logits = returned_row(header, blob, self.proc.slots, ticket.expected, ticket.pair)
            return decode_action(ticket.event, header, logits)
        except InvalidActionError as exc:
            return exc

    def fail_all(self, why: str, timed_out: bool, budget_s: float) -> None:
        """The worker is gone: every ticket in flight fails (the head names the budget it missed)."""
        with self.lock:
            self.gone = why
            first = True
            while self.fifo:
                ticket = self.fifo.popleft()
                if timed_out and first:
                    what = type(ticket.event).__name__ if ticket.event is not None else "loading"
                    error = ModFailedError(
                        f"mod {ticket.name!r} exceeded its {budget_s * 1000:.0f} ms budget on {what}"
                        " (its worker was killed)",
                        mod=ticket.name,
                        kind="timeout",
                    )
                else:
                    error = ModFailedError(f"mod {ticket.name!r} failed: {why}", mod=ticket.name, kind="exception")
                ticket.settle(error)
                first = False
            self.busy_since = None


def wait_for(tickets: Iterable[Ticket], timeout_s: float, *, first: bool = False, poll_s: float = math.inf) -> None:
    """Pump the tickets' workers until every ticket is done (`first`: until one more is), or
    `timeout_s` passes; a worker whose head call runs past its budget is failed meanwhile.

    `poll_s`: look again at least this often. A caller whose worker other threads also wait on
    sets it (another thread may take and settle this one's answer, and then nothing wakes this
    select); the engine thread, the only reader of its workers' pipes, needs none."""
    tickets = list(tickets)
    end = time.monotonic() + timeout_s
    done_before = sum(1 for t in tickets if t.done)
    queues = {t.queue for t in tickets if not t.done and t.queue is not None}
    while True:
        for queue in queues:
            queue.pump()
        pending = [t for t in tickets if not t.done]
        if not pending or (first and len(pending) < len(tickets) - done_before):
            return
        now = time.monotonic()
        if now >= end:
            return
        futures = [t.future for t in pending if t.future is not None]
        if futures:  # in-process calls: no pipes to select on
            cf.wait(futures, end - now, cf.FIRST_COMPLETED if first else cf.ALL_COMPLETED)
            for ticket in pending:
                if ticket.future is not None and ticket.future.done():
                    ticket.settle(ticket.future.result())
            continue
        live = [q for q in {t.queue for t in pending} if q is not None and q.gone is None]
        if not live:  # nothing left that could answer
            return
        wake = min([end] + [q.fifo[0].deadline for q in live if q.fifo])
        by_fd = {q.proc.out_fd: q for q in live}
        writers = {q.proc.in_fd: q for q in live if q.proc.outbox}
        for queue in live:
            with queue.lock:
                queue.readers += 1
        timeout = max(0.0, min(wake - now, end - now, poll_s)) + 0.0005
        try:
            readable, writable, _ = select.select(list(by_fd), list(writers), [], timeout)
        except (OSError, ValueError):  # a pipe closed by a kill from another thread: pump them all
            queues = set(live)
            continue
        finally:
            for queue in live:
                with queue.lock:
                    queue.readers -= 1
        if poll_s < math.inf:
            queues = set(live)
            continue
        # Pump what has something to read or room to write, and any whose head is past its budget.
        now = time.monotonic()
        queues = {by_fd[fd] for fd in readable} | {writers[fd] for fd in writable}
        queues |= {q for q in live if q.fifo and now > q.fifo[0].deadline}
