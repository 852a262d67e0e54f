"""Flows with the original SDK's spellings: completion_text=, case-insensitive .on, .then before
.branch, one-argument branch(state), with_auto_answer, resolve_route, RouteKind/FlowRoute,
RequestState. Run end to end on the simulator with a real BPE tokenizer."""

from __future__ import annotations

from typing import Any

import pytest

from quote_mod_sdk import StrategyError, mod
from quote_mod_sdk.flow import (
    FlowEngine,
    FlowQuestion,
    FlowRoute,
    RequestState,
    Route,
    RouteKind,
    route_message,
    route_noop,
    route_output,
    route_question,
    route_tool,
)
from quote_mod_sdk.strategies.strategy_constructor import ChoicesStrat
from quote_mod_sdk.testing import ScriptedLogits, Simulator


def run(tokenizer: Any, engine: FlowEngine, script: str, max_tokens: int = 60) -> Any:
    @mod
    def flow(event, actions, tok):  # type: ignore[no-untyped-def]
        return engine.handle_event(event, actions, tok)

    sim = Simulator(tokenizer, ScriptedLogits(tokenizer, script, eos_token_id=tokenizer.eos_token_id))
    return sim.run(flow, "Hi", max_tokens=max_tokens)


def test_completion_text_is_the_forced_suffix(tokenizer) -> None:  # type: ignore[no-untyped-def]
    q = FlowQuestion("ok", " OK? ", strategy=ChoicesStrat(["yes", "no"]), completion_text="\n")
    q.then(route_output("fine"))
    assert run(tokenizer, FlowEngine(q), " OK? yes\n").text == "fine"
    assert q.self_prompt.suffix == "\n"
    with pytest.raises(StrategyError, match="once"):
        FlowQuestion("x", "?", responses=["a"], completion="\n", completion_text="\n")


def test_on_matches_case_insensitively_exact_first() -> None:
    q = FlowQuestion("m", "?", responses=["Yes", "yes", "No"])
    q.on("YES", route_output("upper")).on("yes", route_output("exact"))
    assert q.route_for("yes", {}).text == "exact"
    assert q.route_for("Yes", {}).text == "upper"  # no exact key: the first case-insensitive one
    assert q.route_for("No", {}).kind == "noop"


def test_then_wins_over_branch_and_branch_over_otherwise() -> None:
    q = FlowQuestion("b", "?", responses=["a", "b"])
    q.branch(lambda answer, variables: route_output("branched") if answer == "a" else None)
    q.otherwise(route_output("other"))
    assert q.route_for("a", {}).text == "branched"
    assert q.route_for("b", {}).text == "other"
    q.then(route_output("then"))
    assert q.route_for("a", {}).text == "then"


def test_one_argument_branch_gets_the_state_and_resolve_route(tokenizer) -> None:  # type: ignore[no-untyped-def]
    q = FlowQuestion("n", " Number? ", responses=["one", "two"])
    q.branch(lambda state: route_output("got " + state.answers["n"]) if state.answers["n"] == "two" else None)
    q.otherwise(route_noop())
    assert q.resolve_route(RequestState("r", answers={"n": "two"}), "two").text == "got two"
    assert q.resolve_route({"n": "one"}, "one").kind == RouteKind.NOOP
    assert run(tokenizer, FlowEngine(q), " Number? two").text == "got two"


def test_auto_answer_skips_asking_and_routes(tokenizer) -> None:  # type: ignore[no-untyped-def]
    known = FlowQuestion("name", " Name? ", responses=["ann", "bob"]).with_auto_answer(
        lambda state: state.data.get("name") or state.answers.get("hint")
    )
    first = FlowQuestion("hint", " Hint? ", responses=["ann", "bob"])
    first.then(known)
    known.on("ANN", route_output("hello {name}"))
    engine = FlowEngine(first)
    result = run(tokenizer, engine, " Hint? ann")
    assert result.text == "hello ann"  # "name" was never asked: its auto-answer came from "hint"
    blank = FlowQuestion("q", " Q? ", responses=["x"]).with_auto_answer(lambda state: "  ")
    blank.then(route_message("!"))
    assert run(tokenizer, FlowEngine(blank), " Q? x").text.startswith(" Q? x\n!")  # blank: asked as usual


def test_engine_exposes_the_request_state(tokenizer) -> None:  # type: ignore[no-untyped-def]
    seen: list[RequestState] = []
    q = FlowQuestion("c", " C? ", responses=["red", "blue"])
    q.branch(lambda state: seen.append(state) or route_output("ok"))
    engine = FlowEngine(q)
    run(tokenizer, engine, " C? blue")
    assert seen and seen[0].answers == {"c": "blue"} and seen[0].request_id
    assert engine.state(seen[0].request_id) is None  # dropped on Finished


def test_route_kind_and_flow_route_names() -> None:
    assert FlowRoute is Route
    r = route_question(FlowQuestion("q", "?", responses=["a"]))
    assert r.kind == RouteKind.QUESTION and RouteKind("message") is RouteKind.MESSAGE
    assert route_noop().kind == RouteKind.NOOP and route_message("x").kind == RouteKind.MESSAGE


def test_route_tool_callback_gets_actions_state_and_tokenizer(tokenizer) -> None:  # type: ignore[no-untyped-def]
    def book(actions, state, tok):  # type: ignore[no-untyped-def]
        return actions.tool_calls(
            {"name": "book", "arguments": {"size": state.answers["size"], "who": state.data["who"]}}
        )

    q = FlowQuestion("size", " Size? ", responses=["small", "large"]).then(route_tool(book))
    q.assign(lambda state, answer: state.data.__setitem__("who", "ann:" + answer))  # original (state, answer)
    q.assign(lambda answer, variables: variables.__setitem__("upper", answer.upper()))  # ours (answer, vars)
    engine = FlowEngine(q)
    result = run(tokenizer, engine, " Size? large")
    assert result.finish_reason == "tool_calls"
    assert result.tool_calls[0]["function"] == {"name": "book", "arguments": '{"size": "large", "who": "ann:large"}'}
    assert q.route_for("small", {}).callback is book
    with pytest.raises(StrategyError):
        route_tool(book, {"x": 1})


def test_flow_definition_summary_and_state_factory(tokenizer) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import dataclass, field

    from quote_mod_sdk.flow import FlowDefinition, FlowState, route_summary

    @dataclass
    class Booking:
        request_id: str
        answers: dict[str, Any] = field(default_factory=dict)
        data: dict[str, Any] = field(default_factory=dict)

    colour = FlowQuestion("colour", " Colour? ", responses=["red", "blue"])
    colour.then(route_summary())
    flow = FlowDefinition("booking", colour, lambda state: f"[{type(state).__name__}: {state.answers['colour']}]")
    assert flow.all_questions() == [colour]
    engine = FlowEngine(colour, flows={"booking": flow}, state_factory=Booking)
    assert run(tokenizer, engine, " Colour? red").text.startswith(" Colour? red\n[Booking: red]")
    assert isinstance(Booking("r"), FlowState)
    outside = FlowQuestion("o", " O? ", responses=["x"]).then(route_summary())
    assert run(tokenizer, FlowEngine(outside, flows={"booking": flow}), " O? x").text.startswith(" O? x\no: x\n")
    from quote_mod_sdk.actions import ActionBuilder
    from quote_mod_sdk.events import Prefilled

    bad = FlowEngine(colour, state_factory=lambda rid: object())
    with pytest.raises(StrategyError, match="answers"):
        bad.handle_event(Prefilled("r", 0, 9), ActionBuilder(Prefilled("r", 0, 9)), tokenizer)


def test_a_repeated_prefilled_keeps_the_flow_run() -> None:
    from quote_mod_sdk.actions import ActionBuilder, AdjustLogits, ForceTokens
    from quote_mod_sdk.events import Added, ForwardPass, Prefilled

    from .test_original_strategies import CharTokenizer

    tok = CharTokenizer()
    engine = FlowEngine(FlowQuestion("q", "Q:", responses=["a", "b"]))

    def send(event: Any) -> Any:
        return engine.handle_event(event, ActionBuilder(event), tok)

    import numpy as np

    send(Prefilled("r", 0, 9))
    assert isinstance(send(ForwardPass("r", 1, np.zeros(128, dtype=np.float32))), ForceTokens)
    send(Added("r", 1, tok.encode("Q:"), True))
    send(Prefilled("r", 2, 9))  # the original's per-cycle Prefilled: nothing restarts
    assert isinstance(send(ForwardPass("r", 2, np.zeros(128, dtype=np.float32))), AdjustLogits)
    send(Prefilled("r", 0, 9))  # a new request with the same id starts over
    assert isinstance(send(ForwardPass("r", 1, np.zeros(128, dtype=np.float32))), ForceTokens)


def test_engine_constraints_and_their_per_request_states_can_be_inspected() -> None:
    import numpy as np

    from quote_mod_sdk.actions import ActionBuilder, ForceTokens
    from quote_mod_sdk.events import Added, ForwardPass, Prefilled

    from .test_original_strategies import CharTokenizer

    tok = CharTokenizer()
    q1 = FlowQuestion(name="q1", prompt="A:", strategy=ChoicesStrat(["x"]))
    q2 = FlowQuestion(name="q2", prompt="B:", strategy=ChoicesStrat(["y"]))
    q1.then(route_question(q2))
    engine = FlowEngine(entry_question=q1)

    def send(event: Any) -> Any:
        return engine.handle_event(event, ActionBuilder(event), tok)

    send(Prefilled(request_id="r", step=0, max_steps=9, context_info={}))
    assert set(engine._constraints) == {"q1", "q2"}
    assert isinstance(send(ForwardPass(request_id="r", step=1, logits=np.zeros(128, np.float32))), ForceTokens)
    state = engine._constraints["q1"]._states["r"]
    assert state.compiled is not None and state.prompt_emitted and state.outstanding_forced == 2
    send(Added(request_id="r", step=1, added_tokens=tok.encode("A:"), forced=True))
    assert state.outstanding_forced == 0 and not state.completed
