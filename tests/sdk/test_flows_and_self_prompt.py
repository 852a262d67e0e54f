"""Flows (routes, branching, variables) and SelfPrompt erase modes, on a real BPE tokenizer."""

from __future__ import annotations

from typing import Any

import pytest

from quote_mod_sdk import Added, EraseMode, StrategyError, mod, self_prompt_mod
from quote_mod_sdk.flow import (
    FlowEngine,
    FlowQuestion,
    route_message,
    route_noop,
    route_output,
    route_question,
    route_summary,
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


def test_questions_chain_and_summary_uses_assigned_variables(tokenizer) -> None:  # type: ignore[no-untyped-def]
    color = FlowQuestion("color", " Color? ", responses=["red", "blue"]).assign("favourite")
    size = FlowQuestion("size", " Size? ", responses=["small", "large"])
    color.then(size)
    size.then(route_summary("You chose {favourite} and {size}."))
    result = run(tokenizer, FlowEngine(color), " Color? blue\n Size? large")
    assert result.text.startswith(" Color? blue\n Size? large\nYou chose blue and large.")


def test_branch_decides_from_the_answer_and_otherwise_catches_the_rest(tokenizer) -> None:  # type: ignore[no-untyped-def]
    q = FlowQuestion("n", " Number? ", responses=["one", "two", "three"])
    q.on("one", route_output("single"))
    q.branch(lambda answer, variables: route_tool("count", lambda v: {"n": v["n"]}) if answer == "two" else None)
    q.otherwise(route_message(" many"))
    assert run(tokenizer, FlowEngine(q), " Number? one").text == "single"
    tool = run(tokenizer, FlowEngine(q), " Number? two")
    assert tool.finish_reason == "tool_calls" and tool.tool_calls[0]["function"] == {
        "name": "count",
        "arguments": '{"n": "two"}',
    }
    assert run(tokenizer, FlowEngine(q), " Number? three").text.startswith(" Number? three\n many")


def test_erase_mode_accepts_enum_or_string_and_erases_the_exchange(tokenizer) -> None:  # type: ignore[no-untyped-def]
    for erase in (EraseMode.ALL, "all", "ALL"):
        q = FlowQuestion("ok", " OK? ", responses=["yes", "no"], erase_mode=erase)
        q.on("yes", route_message("Done."))
        result = run(tokenizer, FlowEngine(q), " OK? yes")
        assert result.text.startswith("Done.") and tokenizer.decode(result.erased_tokens) == " OK? yes"
    with pytest.raises(StrategyError, match="erase mode"):
        FlowQuestion("x", "?", responses=["a"], erase_mode="sometimes")


def test_route_question_loops_are_bounded(tokenizer) -> None:  # type: ignore[no-untyped-def]
    q = FlowQuestion("again", " Again? ", responses=["yes"])
    q.then(route_question(q))
    result = run(tokenizer, FlowEngine(q, max_questions=3), " Again? yes" * 5, max_tokens=80)
    assert result.finish_reason == "error" and "routing loop" in (result.error or "")


def test_route_noop_ends_the_flow_and_the_model_goes_on(tokenizer) -> None:  # type: ignore[no-untyped-def]
    q = FlowQuestion("go", " Go? ", responses=["yes"]).then(route_noop())
    result = run(tokenizer, FlowEngine(q), " Go? yes\nand then more text")
    assert result.text.startswith(" Go? yes\nand then more text")


def test_question_needs_exactly_one_of_strategy_or_responses() -> None:
    with pytest.raises(StrategyError, match="exactly one"):
        FlowQuestion("bad", "?")
    with pytest.raises(StrategyError, match="exactly one"):
        FlowQuestion("bad", "?", strategy=ChoicesStrat(["a"]), responses=["a"])


def test_self_prompt_erase_prompt_keeps_only_the_answer(tokenizer) -> None:  # type: ignore[no-untyped-def]
    classify = self_prompt_mod(
        prompt=" Choose: A or B ", strategy=ChoicesStrat(["A", "B"]), completion="\n", erase=EraseMode.PROMPT
    )
    sim = Simulator(tokenizer, ScriptedLogits(tokenizer, " Choose: A or B B\n", eos_token_id=tokenizer.eos_token_id))
    result = sim.run(classify, "Hi", max_tokens=20)
    assert result.text.startswith("B") and "Choose" not in result.text
    reinjected = [e for e in result.events if isinstance(e, Added) and e.forced][-1]
    assert tokenizer.decode(reinjected.added_tokens) == "B"  # the suffix was forced, then erased too
    assert classify.self_prompt.answer(result.trace.request_id) is None  # state dropped on Finished
