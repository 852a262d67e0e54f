"""W3C trace context in: the caller's `traceparent` becomes the current OpenTelemetry context.

    HTTP request ──► TraceContextMiddleware: extract(headers) → attach for the request's task
                          └► route handler → ModRuntime.submit → SpanObserver.on_submitted
                                                    inject(current) → GenerationRequest.trace_context

A pure ASGI middleware (not `BaseHTTPMiddleware`), so the route handler runs in the same task
and sees the context. Propagators are the SDK's (`OTEL_PROPAGATORS`; W3C tracecontext and
baggage by default). Installed only when tracing is on.
"""

from __future__ import annotations

from opentelemetry import context, propagate
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["TraceContextMiddleware"]


class TraceContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        carrier = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        token = context.attach(propagate.extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)
