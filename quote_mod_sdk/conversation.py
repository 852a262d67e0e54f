"""The conversation of the request a mod is handling, and only that one.

The request loop enters `conversation_scope(request_id, messages)` around every mod call; a
context variable keeps concurrent requests (threads or asyncio tasks) apart.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from quote_mod_sdk.errors import ConversationAccessError

__all__ = ["conversation_scope", "get_conversation", "get_schemas", "tool_call_pairs"]

Message = dict[str, Any]
_ACTIVE: ContextVar[tuple[str, Sequence[Message]] | None] = ContextVar("quote_active_conversation", default=None)
_SCHEMAS: ContextVar[Sequence[dict[str, Any]]] = ContextVar("quote_active_schemas", default=())


@contextmanager
def conversation_scope(
    request_id: str, messages: Sequence[Message] | None, tools: Sequence[dict[str, Any]] | None = None
) -> Iterator[None]:
    token = _ACTIVE.set((request_id, messages or ()))
    schemas = _SCHEMAS.set(tools or ())
    try:
        yield
    finally:
        _SCHEMAS.reset(schemas)
        _ACTIVE.reset(token)


def get_conversation(request_id: str | None = None) -> list[Message]:
    """A copy of the active request's messages; another request's id raises `PermissionError`."""
    active = _ACTIVE.get()
    if active is None:
        raise ConversationAccessError("get_conversation() only works while a mod is handling an event")
    if request_id is not None and request_id != active[0]:
        raise ConversationAccessError(
            f"a mod may only read the conversation of the request it is handling ({active[0]!r}), not {request_id!r}"
        )
    return copy.deepcopy(list(active[1]))


def get_schemas(request_id: str | None = None) -> list[dict[str, Any]]:
    """The original SDK's per-request tool schemas: the `tools` the active request declared.

    Outside a mod call it returns `[]` (as the original does without a request); another
    request's id raises like `get_conversation`.
    """
    active = _ACTIVE.get()
    if active is None:
        return []
    if request_id is not None and request_id != active[0]:
        raise ConversationAccessError(
            f"a mod may only read the schemas of the request it is handling ({active[0]!r}), not {request_id!r}"
        )
    return copy.deepcopy(list(_SCHEMAS.get()))


def tool_call_pairs(messages: Sequence[Message]) -> list[tuple[dict[str, Any], Message | None]]:
    """Pair each assistant tool call with the `tool` message answering it (None if unanswered)."""
    responses = {m.get("tool_call_id"): m for m in messages if m.get("role") == "tool"}
    pairs: list[tuple[dict[str, Any], Message | None]] = []
    for message in messages:
        if message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or ():
            pairs.append((call, responses.get(call.get("id"))))
    return pairs
