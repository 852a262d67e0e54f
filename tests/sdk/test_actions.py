"""The action validity table, builder aliases and tool-call normalisation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quote_mod_sdk import (
    VALID_ACTIONS,
    ActionBuilder,
    Added,
    AdjustLogits,
    Backtrack,
    ContextInfo,
    Finished,
    ForwardPass,
    InvalidActionError,
    Noop,
    Prefilled,
    Sampled,
)
from quote_mod_sdk.actions import validate_action

A = ActionBuilder()
EVENTS = {
    "Prefilled": Prefilled("r", 0, 8, "hi", ContextInfo([1, 2], 2), 2),
    "ForwardPass": ForwardPass("r", 1, np.zeros(4, dtype=np.float32)),
    "Sampled": Sampled("r", 1, 3),
    "Added": Added("r", 1, [3], False, 3),
    "Finished": Finished("r", 1, "stop"),
}
ACTIONS = {
    "noop": A.noop(),
    "adjust_prefill": A.adjust_prefill([1, 2]),
    "adjust_logits": A.adjust_logits(np.zeros(4)),
    "force_tokens": A.force_tokens([1]),
    "backtrack": A.backtrack(1, [2]),
    "force_output": A.force_output([1]),
    "tool_calls": A.tool_calls({"name": "f"}),
    "emit_error": A.emit_error("no"),
}
SPEC_TABLE = {  # straight from SPEC.md
    "noop": {"Prefilled", "ForwardPass", "Sampled", "Added"},
    "adjust_prefill": {"Prefilled"},
    "adjust_logits": {"ForwardPass"},
    "force_tokens": {"ForwardPass", "Sampled", "Added"},
    "backtrack": {"ForwardPass", "Sampled", "Added"},
    "force_output": {"Prefilled", "ForwardPass", "Sampled", "Added"},
    "tool_calls": {"Prefilled", "ForwardPass", "Sampled", "Added"},
    "emit_error": {"Prefilled", "ForwardPass", "Sampled", "Added"},
}


@pytest.mark.parametrize("action_key", sorted(ACTIONS))
@pytest.mark.parametrize("event_key", ["Prefilled", "ForwardPass", "Sampled", "Added"])
def test_validity_table_matches_spec(event_key: str, action_key: str) -> None:
    event, action = EVENTS[event_key], ACTIONS[action_key]
    if event_key in SPEC_TABLE[action_key]:
        assert validate_action(event, action) is action
    else:
        with pytest.raises(InvalidActionError) as info:
            validate_action(event, action)
        assert event_key in str(info.value) and action_key in str(info.value)
        assert info.value.event == event_key and info.value.action == action_key


def test_every_action_class_is_in_the_table() -> None:
    assert set(VALID_ACTIONS) == {type(a) for a in ACTIONS.values()}


def test_none_means_noop() -> None:
    assert isinstance(validate_action(EVENTS["Added"], None), Noop)


def test_returning_garbage_names_the_event_and_what_came_back() -> None:
    with pytest.raises(InvalidActionError, match=r"ForwardPass handler returned str"):
        validate_action(EVENTS["ForwardPass"], "force it")


def test_illegal_action_error_lists_the_legal_ones() -> None:
    with pytest.raises(
        InvalidActionError, match=r"adjust_logits is not allowed on Added; Added may return: .*backtrack"
    ):
        validate_action(EVENTS["Added"], ACTIONS["adjust_logits"])


@pytest.mark.parametrize(
    "build",
    [
        lambda: A.backtrack(3, [7, 8]),
        lambda: A.backtrack(steps=3, tokens=[7, 8]),
        lambda: A.backtrack(n=3, replacement=[7, 8]),
        lambda: A.backtrack(3, reinject_tokens=np.array([7, 8])),
    ],
)
def test_backtrack_spellings_are_equivalent(build) -> None:  # type: ignore[no-untyped-def]
    assert build() == Backtrack(3, [7, 8])


def test_adjusted_logits_is_an_alias() -> None:
    row = np.ones(4)
    built = A.adjusted_logits(row, token_temp=0)
    assert isinstance(built, AdjustLogits) and built.logits is row and built.token_temp == 0.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: A.force_tokens([]), "at least one token"),
        (lambda: A.force_tokens("abc"), "list of token ids"),
        (lambda: A.force_tokens([1, -2]), "non-negative"),
        (lambda: A.force_tokens([1.5]), "integer token ids"),
        (lambda: A.backtrack(-1), "n >= 0"),
        (lambda: A.backtrack(), "n >= 0"),
        (lambda: A.adjust_logits(), "needs logits"),
        (lambda: A.adjust_logits(token_temp=-1), "token_temp"),
        (lambda: A.adjust_prefill([1], max_steps=-3), "max_steps"),
        (lambda: A.tool_calls([]), "empty"),
        (lambda: A.tool_calls({"arguments": {}}), "function name"),
        (lambda: A.tool_calls({"name": "f", "arguments": {"x": object()}}), "JSON"),
    ],
)
def test_bad_action_arguments_fail_clearly(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidActionError, match=message):
        call()


def test_tool_calls_nested_payload_gets_json_arguments() -> None:
    built = A.tool_calls({"id": "call_1", "type": "function", "function": {"name": "search"}})
    assert built.calls == [{"id": "call_1", "type": "function", "function": {"name": "search", "arguments": "{}"}}]


def test_tool_calls_flat_list_is_normalised_with_ids() -> None:
    built = A.tool_calls([{"name": "search_docs", "arguments": {"query": "token injection"}}, {"name": "b"}])
    first, second = built.calls
    assert first["function"] == {"name": "search_docs", "arguments": json.dumps({"query": "token injection"})}
    assert first["id"].startswith("call_") and first["id"] != second["id"]
    assert first["type"] == "function"


def test_tool_call_string_arguments_pass_through() -> None:
    built = A.tool_calls({"name": "f", "arguments": '{"a": 1}'})
    assert built.calls[0]["function"]["arguments"] == '{"a": 1}'
