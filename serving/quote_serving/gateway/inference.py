"""An inference request as the gateway sees it: read within limits, the few fields it routes on.

    receive ─ read_body (size limit ─► 413, time limit ─► 408) ─► bytes
            ─ InferenceRequest.parse ─► model, stream, include_usage, a token reservation
            ─ body_for_upstream ─► the same bytes, or (a stream without usage) the body asking for usage

The gateway does not validate the rest of the body: the replica does, with the same messages
`quote serve` gives. Only what routing and limits need must be right here.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive, Scope

from quote_serving.api.bounds import MAX_JSON_DEPTH, json_depth_exceeds
from quote_serving.api.errors import BadRequestError, PayloadTooLargeError
from quote_serving.gateway.errors import RequestTimeoutError
from quote_serving.gateway.routes import Decision

__all__ = ["ADMISSION", "Admission", "ClientGone", "InferenceRequest", "read_body"]

ADMISSION = "quote_gateway_admission"  # where the edge leaves an Admission in scope["state"]


@dataclass(frozen=True, slots=True)
class Admission:
    """An authenticated, routed, admitted request, as the edge hands it to the proxy."""

    body: bytes  # what to send upstream
    decision: Decision
    tenant: str
    key_prefix: str
    stream: bool = False  # streams are bounded per chunk (read_timeout_s), other requests as a whole


class ClientGone(Exception):
    """The client disconnected before its request was read."""


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"Request body exceeds {limit} bytes.", code="request_too_large")


async def read_body(scope: Scope, receive: Receive, *, limit: int, timeout_s: float) -> bytes:
    """The whole body, refused early when it is declared or grows over `limit`."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise _too_large(limit)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    chunks, size = [], 0
    while True:
        try:
            message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.001))
        except asyncio.TimeoutError:
            raise RequestTimeoutError(
                f"The request body did not arrive within {timeout_s:g}s.", code="request_timeout"
            ) from None
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@dataclass(frozen=True, slots=True)
class InferenceRequest:
    body: bytes
    data: dict[str, Any]
    model: str
    stream: bool
    include_usage: bool
    max_tokens: int | None

    @classmethod
    def parse(cls, body: bytes) -> InferenceRequest:
        if json_depth_exceeds(body):
            raise BadRequestError(f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.", code="json_too_deep")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise BadRequestError("We could not parse the JSON body of your request.", code="json_invalid") from None
        if not isinstance(data, dict):
            raise BadRequestError("The request body must be a JSON object.", code="invalid_body")
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequestError("You must provide a model parameter.", param="model", code="missing_model")
        options = data.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        limit = data.get("max_completion_tokens") or data.get("max_tokens")
        max_tokens = limit if isinstance(limit, int) and limit > 0 else None
        # Anything but an absent or false `stream` counts as one: asking for usage never hurts a non-stream.
        return cls(body, data, model, data.get("stream") not in (None, False), include_usage, max_tokens)

    def reserve_tokens(self, default_max_tokens: int) -> int:
        """Tokens this request may use, as far as the gateway can tell: prompt bytes / 4 plus max_tokens."""
        return len(self.body) // 4 + (self.max_tokens or default_max_tokens)

    def body_for_upstream(self) -> bytes:
        """The body to forward: streams always ask for usage, so every request can be counted."""
        options = self.data.get("stream_options")
        if not self.stream or self.include_usage or not isinstance(options, (dict, type(None))):
            return self.body  # (a malformed stream_options is the replica's to refuse)
        data = {**self.data, "stream_options": {**(options or {}), "include_usage": True}}
        return json.dumps(data, separators=(",", ":")).encode()
