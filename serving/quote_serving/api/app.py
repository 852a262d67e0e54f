"""The FastAPI application: wiring only — routers, error handlers, body limit, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from quote_serving.api.body import replay
from quote_serving.api.bounds import MAX_JSON_DEPTH, json_depth_exceeds
from quote_serving.api.context import ServingContext
from quote_serving.api.errors import error_body, install_error_handlers
from quote_serving.api.observability import install_observability
from quote_serving.api.routes import chat, completions, health, metrics, models, mods, timeline, traces

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["BodyLimit", "create_app"]


class BodyLimit:
    """Refuse bodies over `limit` bytes (413) before they are buffered, and JSON nested deeper than
    `MAX_JSON_DEPTH` (400) before any parser recurses into it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send, 413, f"Request body exceeds {self.limit} bytes.")
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        # Read the whole body first (at most `limit` bytes): FastAPI turns errors raised while it reads
        # into a generic 400, and the depth check needs the complete text before anything parses it.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                return await self._refuse(send, 413, f"Request body exceeds {self.limit} bytes.")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if json_depth_exceeds(body):
            return await self._refuse(send, 400, f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.")
        await self.app(scope, replay(body, receive), send)

    async def _refuse(self, send: Send, status: int, message: str) -> None:
        import json

        body = json.dumps(error_body(message, "invalid_request_error")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


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
    if ctx.settings.gateway_secret is not None:
        from quote_serving.gateway.trust import TrustedTenant

        app.add_middleware(TrustedTenant, secret=ctx.settings.gateway_secret.get_secret_value().encode())
    app.add_middleware(BodyLimit, limit=ctx.settings.max_request_bytes)  # outermost: bounds what TrustedTenant reads
    return app
