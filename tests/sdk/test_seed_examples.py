"""Every code example of the seed documents runs through the simulator and does what it says."""

from __future__ import annotations

import json
from typing import Any

from quote_mod_sdk import Added, serialize_mod
from quote_mod_sdk.testing import RandomLogits, ScriptedLogits, Simulator

from .conftest import load_seed


def scripted(tokenizer: Any, script: str) -> Simulator:
    return Simulator(tokenizer, ScriptedLogits(tokenizer, script, eos_token_id=tokenizer.eos_token_id))


def rambling(tokenizer: Any, seed: int = 7) -> Simulator:
    return Simulator(tokenizer, RandomLogits(seed, banned=tuple(tokenizer.all_special_ids)))


def enc(tokenizer: Any, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


# ---- building-mods-guide.txt ------------------------------------------------------------------
def test_skeleton_changes_nothing(tokenizer) -> None:  # type: ignore[no-untyped-def]
    simulator = rambling(tokenizer)
    assert simulator.run(load_seed("skeleton").my_mod, "Hi").tokens == simulator.run(None, "Hi").tokens


def test_replace_phrase_rewrites_the_prefill(tokenizer) -> None:  # type: ignore[no-untyped-def]
    result = rambling(tokenizer).run(load_seed("replace_phrase").replace_phrase, "Please. Say hi.", max_tokens=4)
    assert tokenizer.decode(result.trace.prompt_tokens) == "Please. Say bye."


def test_ban_em_dash_never_emits_the_dash(tokenizer) -> None:  # type: ignore[no-untyped-def]
    dash = enc(tokenizer, "—")[0]
    script = " one — two — three"
    assert dash in scripted(tokenizer, script).run(None, "Hi").tokens  # the model wants the dash
    result = scripted(tokenizer, script).run(load_seed("ban_em_dash").ban_em_dash, "Hi", max_tokens=12)
    assert dash not in result.tokens and result.text.startswith(" one ")


def test_backtrack_phrase_replaces_the_refusal(tokenizer) -> None:  # type: ignore[no-untyped-def]
    script = " Sure. I can't help with that today."
    result = scripted(tokenizer, script).run(load_seed("backtrack_phrase").backtrack_phrase, "Hi", max_tokens=30)
    assert result.text.startswith(" Sure.I can help you with that: ")
    assert "can't" not in result.text
    assert tokenizer.decode(result.erased_tokens) == " I can't help with that"


def test_emit_tool_call_reads_the_conversation(tokenizer) -> None:  # type: ignore[no-untyped-def]
    seed = load_seed("emit_tool_call").emit_tool_call
    result = rambling(tokenizer).run(seed, "Hi", messages=[{"role": "user", "content": "find"}], request_id="abc-123")
    assert result.finish_reason == "tool_calls"
    assert result.tool_calls == [
        {"id": "call_abc", "type": "function", "function": {"name": "search", "arguments": "{}"}}
    ]
    answered = [
        {"role": "user", "content": "find"},
        {"role": "assistant", "tool_calls": [{"id": "call_abc", "type": "function", "function": {"name": "search"}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "found"},
    ]
    assert rambling(tokenizer).run(seed, "Hi", messages=answered, max_tokens=3).finish_reason == "length"


def test_self_prompt_wraps_a_question_in_tags(tokenizer) -> None:  # type: ignore[no-untyped-def]
    prompt = " Wrap a question in <question_to_user> tags: "
    script = prompt + "<question_to_user>What is your name?</question_to_user> Thanks."
    result = scripted(tokenizer, script).run(load_seed("question_tags").question_tags, "Hi", max_tokens=60)
    assert result.text.startswith(prompt + "<question_to_user>What is your name?</question_to_user>")
    forced = [e for e in result.events if isinstance(e, Added) and e.forced]
    assert tokenizer.decode(forced[0].added_tokens) == prompt


def test_self_prompt_question_is_constrained_even_against_the_model(tokenizer) -> None:  # type: ignore[no-untyped-def]
    result = rambling(tokenizer, seed=3).run(load_seed("question_tags").question_tags, "Hi", max_tokens=40)
    assert result.text.startswith(" Wrap a question in <question_to_user> tags: <question_to_user>")


def test_classifier_answers_a_choice_and_forces_the_suffix(tokenizer) -> None:  # type: ignore[no-untyped-def]
    classifier = load_seed("classifier").classifier
    result = scripted(tokenizer, " Choose: A or B B\nbecause").run(classifier, "Hi", max_tokens=20)
    assert result.text.startswith(" Choose: A or B B\n")
    suffix_events = [
        e for e in result.events if isinstance(e, Added) and e.forced and e.added_tokens == enc(tokenizer, "\n")
    ]
    assert suffix_events, "the completion suffix must really be forced"
    for seed in range(5):  # whatever the model prefers, the answer is one of the choices
        text = rambling(tokenizer, seed).run(classifier, "Hi", max_tokens=12).text
        assert text.startswith((" Choose: A or B A\n", " Choose: A or B B\n"))


def test_flow_confirm_routes_yes_to_a_message(tokenizer) -> None:  # type: ignore[no-untyped-def]
    flow = load_seed("flow_confirm")
    result = scripted(tokenizer, " Proceed? (yes/no): yes").run(flow.flow_mod, "Hi", max_tokens=30)
    assert result.text.startswith(" Proceed? (yes/no): yes\nOk!")  # the question's default "\n" suffix
    assert [e for e in result.events if isinstance(e, Added) and e.forced][-1].added_tokens == enc(tokenizer, "Ok!")


def test_serialize_mod_payload_registers(tokenizer) -> None:  # type: ignore[no-untyped-def]
    payload = serialize_mod(load_seed("skeleton").my_mod, name="my_mod")
    body = {"model": "base/model/my_mod", "messages": [{"role": "user", "content": "Hi"}]}
    assert json.loads(json.dumps(payload))["name"] == body["model"].rsplit("/", 1)[1]


# ---- platform-overview.txt --------------------------------------------------------------------
def test_runtime_control_changes_nothing(tokenizer) -> None:  # type: ignore[no-untyped-def]
    simulator = rambling(tokenizer)
    assert simulator.run(load_seed("runtime_control").runtime_control, "Hi").tokens == simulator.run(None, "Hi").tokens


def test_prefill_patch_prepends_the_system_line(tokenizer) -> None:  # type: ignore[no-untyped-def]
    result = rambling(tokenizer).run(load_seed("prefill_patch").patch_prefill, "What is 2+2?", max_tokens=2)
    assert tokenizer.decode(result.trace.prompt_tokens) == "System: answer concisely\nWhat is 2+2?"


def test_logits_guard_blocks_the_token(tokenizer) -> None:  # type: ignore[no-untyped-def]
    blocked = tokenizer.encode("unsafe")[0]
    assert blocked in scripted(tokenizer, "unsafe unsafe").run(None, "Hi").tokens
    result = scripted(tokenizer, "unsafe unsafe").run(load_seed("logits_guard").logits_guard, "Hi", max_tokens=8)
    assert blocked not in result.tokens


def test_trajectory_rewrite_rewinds_and_restates_after_step_30(tokenizer) -> None:  # type: ignore[no-untyped-def]
    result = rambling(tokenizer).run(load_seed("trajectory_rewrite").revise_suffix, "Hi", max_tokens=64)
    assert result.error is None
    assert result.text.endswith("Let's restate clearly:")
    assert result.erased_tokens
    assert min(c.step for c in result.mod_calls if c.action == "backtrack") == 31


def test_tool_router_emits_the_tool_call(tokenizer) -> None:  # type: ignore[no-untyped-def]
    result = rambling(tokenizer).run(load_seed("tool_router").route_tools, "Hi")
    assert result.finish_reason == "tool_calls" and result.tokens == []
    (call,) = result.tool_calls or []
    assert call["function"] == {"name": "search_docs", "arguments": json.dumps({"query": "token injection"})}


def test_flow_engine_yes_calls_the_tool_after_erasing(tokenizer) -> None:  # type: ignore[no-untyped-def]
    flow = load_seed("flow_engine")
    result = scripted(tokenizer, "Should I call a runtime tool?yes").run(flow.runtime_flow, "Hi", max_tokens=30)
    assert result.finish_reason == "tool_calls"
    assert result.tool_calls and result.tool_calls[0]["function"]["name"] == "search_docs"
    assert result.text == ""  # erase_mode="all" removed the question and the answer


def test_flow_engine_no_erases_and_lets_the_model_go_on(tokenizer) -> None:  # type: ignore[no-untyped-def]
    flow = load_seed("flow_engine")
    result = scripted(tokenizer, "Should I call a runtime tool?no").run(flow.runtime_flow, "Hi", max_tokens=30)
    assert result.tool_calls is None and result.finish_reason != "error"
    assert tokenizer.decode(result.erased_tokens) == "Should I call a runtime tool?no"
    backtracks = [c for c in result.mod_calls if c.action == "backtrack"]
    assert len(backtracks) == 1 and backtracks[0].detail["n"] == len(result.erased_tokens)
