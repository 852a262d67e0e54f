"""Routes as the original SDK's users write them: callables of the request's state (built per
request, like its examples' questions), message strings, several branches, and assignments
`(ctx, ans)` on a state of their own (`state_factory`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from quote_mod_sdk import ForceOutput, ForceTokens, StrategyError
from quote_mod_sdk.flow import FlowEngine, FlowQuestion, RouteTarget, route_output
from quote_mod_sdk.strategies.strategy_constructor import ChoicesStrat

from .test_original_completion_suffix import TOK, Driver


@dataclass
class Booking:
    request_id: str
    answers: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    seats: int | None = None


def seats_question(ctx: Booking) -> RouteTarget:
    return (
        FlowQuestion(name="seats", prompt=" Seats:", strategy=ChoicesStrat(["1", "2"]), completion_text="")
        .assign(lambda ctx, ans: setattr(ctx, "seats", int(ans)))
        .then(lambda ctx: route_output(f"booked {ctx.seats} for {ctx.request_id}"))
    )


def booking_engine() -> FlowEngine:
    start = FlowQuestion(name="go", prompt=" Go:", strategy=ChoicesStrat(["yes", "abort"]), completion_text="")
    start.on("yes", seats_question)
    start.on("abort", lambda ctx: "Cancelled.")
    return FlowEngine(entry_question=start, state_factory=lambda rid: Booking(request_id=rid))


def test_a_callable_route_builds_the_next_question_from_the_state() -> None:
    run = Driver(booking_engine(), request_id="req-7")
    run.prefilled()
    prompt = run.ask("yes")
    assert isinstance(prompt, ForceTokens) and TOK.decode(prompt.tokens) == " Seats:"
    run.added(" Seats:", forced=True)
    run.forward()
    run.added("2", forced=False)
    final = run.forward()
    assert isinstance(final, ForceOutput) and TOK.decode(final.tokens) == "booked 2 for req-7"


def test_a_route_that_gives_a_string_forces_that_message() -> None:
    run = Driver(booking_engine())
    run.prefilled()
    message = run.ask("abort")
    assert isinstance(message, ForceTokens) and TOK.decode(message.tokens) == "Cancelled."


def test_branches_are_tried_in_order_and_their_callables_resolved() -> None:
    q = FlowQuestion(name="q", prompt=" Q:", strategy=ChoicesStrat(["a"]), completion_text="")
    q.branch(lambda ctx: None)  # nothing to say: the next branch decides
    q.branch(lambda ctx: lambda again: route_output("second"))
    run = Driver(FlowEngine(entry_question=q))
    run.prefilled()
    final = run.ask("a")
    assert isinstance(final, ForceOutput) and TOK.decode(final.tokens) == "second"


def test_a_route_of_the_wrong_kind_is_refused_when_given() -> None:
    q = FlowQuestion(name="q", prompt=" Q:", strategy=ChoicesStrat(["a"]))
    with pytest.raises(StrategyError, match="a route must be"):
        q.then(42)
