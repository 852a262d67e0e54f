"""Refusals the gateway answers itself, in OpenAI's error shape, and the one function that sends them.

QuoteAPIError (quote_serving.api.errors)
 ├── AuthenticationError      401  no key, a garbled key, an unknown, revoked or expired key
 ├── ForbiddenError           403  (api.errors) the key lacks a scope; the model refuses this mod
 ├── NotFoundError            404  (api.errors) unknown model, or one this tenant may not use
 ├── RequestTimeoutError      408  the client did not send its body in time
 ├── PayloadTooLargeError     413  (api.errors) the body is over the limit
 ├── RateLimitError           429  a per-key limit; carries Retry-After
 ├── UpstreamError            502  (api.errors) no replica answered
 └── ServiceUnavailableError  503  the registry cannot vouch for a key; a model's replicas are not ready

The edge is pure ASGI and runs outside FastAPI's exception handlers, so it renders errors with
`send_error` rather than raising them into an app.
"""

from __future__ import annotations

import json

from starlette.types import Send

from quote_serving.api.errors import QuoteAPIError, error_body

__all__ = [
    "AuthenticationError",
    "RateLimitError",
    "RequestTimeoutError",
    "ServiceUnavailableError",
    "render_error",
    "send_error",
]


class AuthenticationError(QuoteAPIError):
    """The request carries no usable API key."""

    status_code = 401
    error_type = "invalid_request_error"


class RequestTimeoutError(QuoteAPIError):
    """The client sent its body too slowly."""

    status_code = 408
    error_type = "invalid_request_error"


class RateLimitError(QuoteAPIError):
    """A per-key limit refused the request; retry after `retry_after_s` seconds.

    Like OpenAI, the error's type names the limit: "requests", "tokens" (or "concurrency").
    """

    status_code = 429
    error_type = "requests"

    def __init__(self, message: str, *, retry_after_s: int, limit: str) -> None:
        super().__init__(message, code="rate_limit_exceeded")
        self.retry_after_s = max(1, retry_after_s)
        self.limit = limit
        self.error_type = limit


class ServiceUnavailableError(QuoteAPIError):
    """Something the gateway needs is down for now; retrying later may work."""

    status_code = 503
    error_type = "server_error"


def render_error(exc: QuoteAPIError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of `exc` as a client sees it."""
    body = json.dumps(error_body(exc.message, exc.error_type, exc.param, exc.code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if isinstance(exc, RateLimitError):
        headers.append((b"retry-after", str(exc.retry_after_s).encode()))
    return exc.status_code, headers, body


async def send_error(send: Send, exc: QuoteAPIError) -> None:
    status, headers, body = render_error(exc)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
