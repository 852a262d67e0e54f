"""Many requests' split-phase steps driven over `ModCalls` at once, until every one has returned.

The SGLang step (`engine/sglang/step.py`) must answer every row of its batch before it returns
(SGLang forms the batch and wants a token per row), so unlike the embedded engine's step
(`ModRuntime._step_isolated`, where a late request sits out a forward) it waits for all; the
worker pool still enforces each call's budget, so a stuck mod fails its own request in time.

    Job(steps, then) ─► its first event goes out with `then` (the events a noop answer implies)
    drive(jobs)      ─► wait for any answer ─► send it into its job's steps ─► the next event goes
                        out, or is the call sent ahead (`take_sent`) ─► … ─► the steps return

One thread, no thread per call: every job's call is in flight at once and the answers are taken
as they come (`mod_calls.wait_for`). The embedded engine's step drives its requests with the same
`Job`, one `advance` at a time, without waiting for all (`ModRuntime._advance`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from quote_mod_sdk.actions import Noop
from quote_mod_sdk.errors import ModFailedError
from quote_mod_sdk.events import Added, Sampled
from quote_mod_sdk.generation import Steps
from quote_serving.runtime.mod_calls import Ticket, drop_chain, wait_for

__all__ = ["Job", "drive", "take_sent"]

Submit = Callable[[Any, Sequence[Any]], Ticket]  # (event, then) → its ticket


def take_sent(event: Any, sent: Ticket | None) -> Ticket | None:
    """`sent` if it is the call for `event` that went out ahead (with the call before it), else
    None, and its chain's answers are then dropped on arrival. Sampled and Added only: their
    fields are plain values, compared whole."""
    if (
        sent is not None
        and not sent.discard
        and type(event) is type(sent.event)
        and isinstance(event, (Sampled, Added))
        and event == sent.event
    ):
        return sent
    drop_chain(sent)
    return None


@dataclass(eq=False)
class Job:
    """One request's steps in progress. `then`: sent with its first call; `follow`: a call sent
    ahead that its first event may be. When done: `result` (the steps' return value) or
    `error` (what they raised), and `kept`: the calls sent with its last call, when that call
    was answered noop (the next phase's first events, e.g. the Sampled and Added sent with a
    ForwardPass)."""

    steps: Steps
    submit: Submit
    then: Sequence[Any] = ()
    follow: Ticket | None = None
    ticket: Ticket | None = None
    result: Any = None
    error: BaseException | None = None
    kept: Ticket | None = None
    done: bool = False

    def advance(self) -> None:
        """Drive the steps as far as the answers in allow."""
        if self.done or (self.ticket is not None and not self.ticket.done):
            return
        ticket = self.ticket
        try:
            if ticket is None:
                event, follow = next(self.steps), self.follow
            else:
                event, follow = self.steps.send(ticket.outcome), ticket.paired
            self.follow = None
            while True:
                ticket = take_sent(event, follow)
                if ticket is None:
                    ticket, self.then = self.submit(event, self.then), ()
                self.ticket = ticket
                if not ticket.done:
                    return
                event, follow = self.steps.send(ticket.outcome), ticket.paired
        except StopIteration as stop:
            self.result = stop.value
            self.kept = ticket.paired if ticket is not None and isinstance(ticket.outcome, Noop) else None
        except BaseException as exc:  # the caller decides; the other jobs go on
            self.error = exc
        if ticket is not None and ticket.paired is not self.kept:
            drop_chain(ticket.paired)  # sent with the last call, and not the next phase's
        drop_chain(self.follow)
        self.done, self.ticket, self.follow = True, None, None

    def abandon(self) -> None:
        """Nobody will drive it any more (its request ended): answers still owed are dropped on
        arrival, and steps waiting on one are closed."""
        ticket = self.ticket
        if ticket is not None:
            ticket.discard = True
            drop_chain(ticket.paired)
            if not ticket.done:
                self.steps.close()
        drop_chain(self.follow)
        self.done, self.ticket, self.follow = True, None, None


def drive(jobs: Sequence[Job], timeout_s: float) -> None:
    """Run every job to its end, their calls in flight at once. The pool fails a call past its
    budget (and its worker), so every job ends; `timeout_s` only bounds a worker that never
    starts: a call still unanswered then is answered with a timeout, which fails its request as
    any failed call does. Sync callers look every 2 ms (`wait_for`'s `poll_s`): another thread
    (the pool's monitor) may take an answer meant for this one."""
    deadline = time.monotonic() + timeout_s
    for job in jobs:
        job.advance()
    while pending := [job for job in jobs if not job.done]:
        tickets = [job.ticket for job in pending if job.ticket is not None]
        left = deadline - time.monotonic()
        if left > 0:
            wait_for(tickets, left, first=True, poll_s=0.002)
        else:
            for ticket in tickets:
                if not ticket.done:
                    ticket.settle(
                        ModFailedError(f"mod {ticket.name!r} did not answer", mod=ticket.name, kind="timeout")
                    )
        for job in pending:
            job.advance()
