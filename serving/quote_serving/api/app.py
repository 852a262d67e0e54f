"""The FastAPI application: wiring only — routers, error handlers, body limit, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quote_serving.api.context import ServingContext
from quote_serving.api.errors import error_body, install_error_handlers
from quote_serving.api.observability import install_observability
from quote_serving.api.routes import chat, completions, health, metrics, models, mods, timeline, traces

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["BodyLimit", "create_app"]


class BodyLimit:
    """Refuse bodies over `limit` bytes with a 413 before they are buffered (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        import json

        body = json.dumps(error_body(f"Request body exceeds {self.limit} bytes.", "invalid_request_error")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def create_app(ctx: ServingContext, *, tracer_provider: TracerProvider | None = None) -> FastAPI:
    """The app around `ctx`; tracing follows OTEL_* unless a `tracer_provider` is given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not ctx.runtime.healthy:
            ctx.runtime.start()
        yield
        ctx.runtime.stop()
        observability.close()

    app = FastAPI(title="Quote", version="0.1.0", lifespan=lifespan)
    app.state.quote = ctx
    install_error_handlers(app)
    observability = install_observability(app, ctx, tracer_provider=tracer_provider)
    for module in (chat, completions, models, mods, traces, health, metrics, timeline):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, limit=ctx.settings.max_request_bytes)
    if ctx.settings.gateway_secret is not None:
        from quote_serving.gateway.trust import TrustedTenant

        app.add_middleware(TrustedTenant, secret=ctx.settings.gateway_secret.get_secret_value().encode())
    return app
