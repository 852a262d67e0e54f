"""`x-quote-replica`: which engine replica produced a response (operations, tests, traces).

    ReplicaHeader (per HTTP request) ─ sets a ReplicaSlot in a context variable ─► route ─► RemoteRuntime.submit
    RemoteRuntime ─ first EngineUpdate names its replica ─► slot.value
    ReplicaHeader ─ http.response.start ─► adds the header when the slot is filled

The route runs in the middleware's context (pure ASGI, same task), so the runtime finds the
request's slot without the routes knowing about it. Responses are sent only after the first
update (non-streaming: at the end; streaming: after the first news), so the slot is filled by then.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HEADER", "ReplicaHeader", "ReplicaSlot", "current_slot"]

HEADER = "x-quote-replica"


@dataclass
class ReplicaSlot:
    value: str | None = None


_slot: contextvars.ContextVar[ReplicaSlot | None] = contextvars.ContextVar("quote_replica_slot", default=None)


def current_slot() -> ReplicaSlot | None:
    """The slot of the HTTP request being handled, if the middleware is installed."""
    return _slot.get()


class ReplicaHeader:
    """Pure ASGI middleware adding `x-quote-replica: <app>#<deployment>#<replica>` to responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        slot = ReplicaSlot()
        token = _slot.set(slot)

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start" and slot.value:
                message["headers"] = [*message.get("headers", []), (HEADER.encode(), slot.value.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_header)
        finally:
            _slot.reset(token)
