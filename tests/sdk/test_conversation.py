"""Request-scoped conversation access and tool-call pairing."""

from __future__ import annotations

import pytest

from quote_mod_sdk import ConversationAccessError, Prefilled, get_conversation, mod, tool_call_pairs
from quote_mod_sdk.conversation import conversation_scope
from quote_mod_sdk.testing import Simulator

MESSAGES = [
    {"role": "user", "content": "find docs"},
    {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "search"}}, {"id": "c2"}]},
    {"role": "tool", "tool_call_id": "c1", "content": "result"},
]


def test_mod_reads_its_own_conversation(tokenizer) -> None:  # type: ignore[no-untyped-def]
    seen = []

    @mod
    def reader(event, actions):  # type: ignore[no-untyped-def]
        if isinstance(event, Prefilled):
            seen.append(get_conversation())
            seen.append(get_conversation(event.request_id))
        return None

    Simulator(tokenizer).run(reader, "hi", max_tokens=2, messages=MESSAGES, request_id="req-1")
    assert seen == [MESSAGES, MESSAGES]


def test_another_requests_conversation_is_refused(tokenizer) -> None:  # type: ignore[no-untyped-def]
    @mod
    def snoop(event, actions):  # type: ignore[no-untyped-def]
        get_conversation("someone-else")

    result = Simulator(tokenizer).run(snoop, "hi", max_tokens=2, messages=MESSAGES)
    assert result.finish_reason == "error" and "ConversationAccessError" in (result.error or "")
    assert issubclass(ConversationAccessError, PermissionError)


def test_outside_a_mod_call_there_is_no_conversation() -> None:
    with pytest.raises(PermissionError):
        get_conversation()


def test_returned_messages_are_a_copy() -> None:
    with conversation_scope("r", MESSAGES):
        get_conversation()[0]["content"] = "changed"
    assert MESSAGES[0]["content"] == "find docs"


def test_tool_call_pairs_matches_responses_by_id() -> None:
    pairs = tool_call_pairs(MESSAGES)
    assert [(call["id"], None if resp is None else resp["content"]) for call, resp in pairs] == [
        ("c1", "result"),
        ("c2", None),
    ]
