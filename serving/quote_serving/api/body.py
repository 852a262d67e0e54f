"""A request body read whole by a middleware, handed on to the app as if it had just arrived.

BodyLimit (api/app.py)         reads and bounds the body, checks its JSON depth ─┐
TrustedTenant (gateway/trust)  reads it again to check the signature's digest  ─┴► replay(body, receive)
"""

from __future__ import annotations

from starlette.types import Message, Receive

__all__ = ["replay"]


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that yields `body` once, then the client's later messages (http.disconnect, which
    streaming responses watch for)."""
    replayed = False

    async def receive_again() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again
