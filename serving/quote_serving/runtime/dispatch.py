"""How long one step waits for isolated mods' answers: the rule that keeps stragglers out.

With `mod_isolation=process` a mod call is a round trip to a worker process, so the engine thread
sends every request's call of a phase at once (`runtime/mod_calls.py`; no thread per call: it
selects on the workers' pipes) and then waits like this (`ModRuntime._wait_phase`):

    dispatch all ─► wait for the first answer (t₁ after dispatch)
                 └► wait for the rest at most `max(floor, factor × t₁)` more
                    answered ─► go on with the step
                    not yet   ─► sit out: the request keeps its call in flight and skips the next
                                 forward; its answer is picked up in a later step

So a mod that takes most of its budget every step slows only its own requests; the worker pool
still enforces the budget itself (the call fails and its worker is killed past it).

`ThreadedCalls` sends calls the same way to an in-process invoker, on threads: the conformance
suite's `dispatch` backend runs the isolated step with it, with mods that record what they see.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from quote_mod_sdk import events as ev
from quote_mod_sdk.actions import Noop
from quote_mod_sdk.conversation import conversation_scope
from quote_mod_sdk.generation import ModInvoker
from quote_mod_sdk.mod import ACTIONS, Mod
from quote_serving.runtime.mod_calls import Ticket, chain, chained

__all__ = ["StragglerPolicy", "ThreadedCalls"]


@dataclass(frozen=True)
class StragglerPolicy:
    floor_s: float = 0.002  # always wait this long for the rest: scheduling noise is not a straggler
    factor: float = 4.0  # ... or this many times the first answer's latency
    ceiling_s: float = 0.05  # never hold the batch longer than this for one slow call

    def grace(self, first_s: float) -> float:
        return min(max(self.floor_s, self.factor * first_s), self.ceiling_s)


class ThreadedCalls:
    """`mod_calls.ModCalls` for an in-process invoker: each call run by `invoke` on a thread of `pool`."""

    def __init__(self, invoke: ModInvoker, pool: cf.ThreadPoolExecutor, tokenizer: Any = None) -> None:
        self.invoke, self.pool, self.tokenizer = invoke, pool, tokenizer

    def submit(
        self,
        key: str,
        mod: Mod,
        event: ev.ModEvent,
        *,
        conversation: tuple[Any, Any] | None = None,
        then: Sequence[ev.ModEvent] = (),
    ) -> Ticket:
        ticket = Ticket(mod.name, event, 0.0, paired=chained(mod.name, then, 0.0))
        messages, tools = conversation or (None, None)

        def run() -> Any:
            first = answer = self._answer(mod, event, messages, tools)
            for follow in chain(ticket.paired):  # each runs only while the one before answered noop
                answer = self._answer(mod, follow.event, messages, tools) if isinstance(answer, Noop) else None
                follow.discard = follow.discard or answer is None  # not run: as the worker sends nothing
                follow.settle(answer)
            return first

        ticket.future = self.pool.submit(run)
        return ticket

    def _answer(self, mod: Mod, event: Any, messages: Any, tools: Any) -> Any:
        try:
            with conversation_scope(event.request_id, messages, tools):
                return self.invoke(mod, event, ACTIONS, self.tokenizer)
        except Exception as exc:  # the request's steps turn it into its error
            return exc
