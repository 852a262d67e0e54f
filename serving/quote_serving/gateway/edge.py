"""GatewayEdge: the ASGI middleware that every request to a gateway passes, standalone or in-process.

    request ─► classify(method, path)
        open (health, metrics, share links) ──────────────────────────────► app
        /v1/* ─► key ─► KeyGrant (401) ─► scope (403) ─► state["tenant"] ─► app (models, traces…)
        POST /v1/chat/completions, /v1/completions:
            body (413, 408) ─► model ─► route (404, 403, 503) ─► limits (429 + Retry-After)
            ─► state["tenant"], state[ADMISSION] ─► app ─ response through ResponseMeter ─► client
            ─► settle the limits with the real token count ─► usage record (batched to the registry)

`app` is the gateway's own routes with ProxyApp behind them (`quote gateway`), or the embedded
server's FastAPI app (`quote serve --gateway`), whose routes read `request.state.tenant` and
resolve mods as that tenant. The edge also starts and stops the gateway's parts with the app's
lifespan. Refusals are rendered here, in OpenAI's shape, before anything reaches the app.
"""

from __future__ import annotations

import enum
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quote_serving.api.errors import ForbiddenError, QuoteAPIError
from quote_serving.gateway.components import Gateway
from quote_serving.gateway.errors import RateLimitError, send_error
from quote_serving.gateway.inference import ADMISSION, Admission, ClientGone, InferenceRequest, read_body
from quote_serving.gateway.keys import KeyGrant, bearer_key
from quote_serving.gateway.limits import Ticket
from quote_serving.gateway.metering import ResponseMeter
from quote_serving.gateway.routes import Decision

__all__ = ["Access", "GatewayEdge", "classify"]

logger = logging.getLogger(__name__)

INFERENCE_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})


class Access(enum.Enum):
    OPEN = "open"  # no key: probes, metrics, the timeline page, share links
    KEY = "key"  # any valid key with the infer scope
    INFERENCE = "inference"  # key, route, limits, usage
    REFUSED = "refused"  # not through a gateway (publishing mods is the registry's job)


def classify(method: str, path: str, query: bytes) -> Access:
    if path in INFERENCE_PATHS:
        return Access.INFERENCE if method == "POST" else Access.KEY
    if not path.startswith("/v1/"):
        return Access.OPEN
    if path.startswith("/v1/mods") and method not in ("GET", "HEAD"):
        return Access.REFUSED
    if path.startswith("/v1/traces/") and method == "GET" and b"share=" in query:
        return Access.OPEN  # the trace route checks the share token itself
    return Access.KEY


@dataclass(slots=True)
class _Admitted:
    request: InferenceRequest
    decision: Decision
    ticket: Ticket | None
    body: bytes  # what goes upstream


class GatewayEdge:
    def __init__(
        self, app: ASGIApp, gateway: Gateway, *, inference: ASGIApp | None = None, replay_body: bool = False
    ) -> None:
        """`inference`: where admitted requests go (the ProxyApp), straight, not through `app`'s routing.
        `replay_body`: the app reads the body itself (in-process); a ProxyApp takes it from the admission.
        """
        self.app, self.gateway, self.replay_body = app, gateway, replay_body
        self.inference = inference or app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await self._lifespan(scope, receive, send)
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        access = classify(scope["method"], scope["path"], scope["query_string"])
        if access is Access.OPEN:
            return await self.app(scope, receive, send)
        grant: KeyGrant | None = None
        try:
            grant = await self._grant(scope, access)
            admitted = await self._admit(scope, receive, grant) if access is Access.INFERENCE else None
        except ClientGone:
            return None
        except QuoteAPIError as exc:
            self._refused(exc, grant)
            return await send_error(send, exc)
        assert grant is not None
        scope.setdefault("state", {})["tenant"] = grant.tenant
        if admitted is None:
            return await self.app(scope, receive, send)
        await self._forward(scope, receive, send, grant, admitted)

    async def _grant(self, scope: Scope, access: Access) -> KeyGrant:
        grant = await self.gateway.keys.authenticate(bearer_key(scope["headers"]))
        if not grant.allows("infer"):
            raise ForbiddenError("This API key lacks the 'infer' scope.", code="insufficient_scope")
        if access is Access.REFUSED:
            raise ForbiddenError(
                "Mods are published to the registry (`quote mods publish`), not through the gateway.",
                code="publish_through_registry",
            )
        return grant

    async def _admit(self, scope: Scope, receive: Receive, grant: KeyGrant) -> _Admitted:
        settings = self.gateway.settings
        body = await read_body(scope, receive, limit=settings.max_request_bytes, timeout_s=settings.body_timeout_s)
        request = InferenceRequest.parse(body)
        decision = self.gateway.table.decide(request.model, grant.tenant)
        limits = grant.limits.or_defaults(self.gateway.defaults)
        ticket = None
        if not limits.unlimited:
            default_max = 16 if scope["path"] == "/v1/completions" else settings.default_max_tokens
            ticket = await self.gateway.limiter.admit(grant.prefix, limits, request.reserve_tokens(default_max))
        return _Admitted(request, decision, ticket, request.body_for_upstream())

    async def _forward(self, scope: Scope, receive: Receive, send: Send, grant: KeyGrant, admitted: _Admitted) -> None:
        request = admitted.request
        meter = ResponseMeter(strip_usage_chunk=request.stream and not request.include_usage)
        scope["state"][ADMISSION] = Admission(
            admitted.body, admitted.decision, grant.tenant, grant.prefix, stream=request.stream
        )

        async def metered_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                meter.start(message["status"], message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                out = meter.feed(chunk, message.get("more_body", False))
                if out is not chunk:
                    message = {**message, "body": out}
            await send(message)

        if self.replay_body:
            scope, receive = _replayed(scope, receive, admitted.body)
        try:
            await self.inference(scope, receive, metered_send)
        finally:
            await self._settle(grant, admitted, meter)

    async def _settle(self, grant: KeyGrant, admitted: _Admitted, meter: ResponseMeter) -> None:
        usage = meter.usage
        if admitted.ticket is not None:
            # No usage on a 200 means the client left mid-stream: the reservation stands.
            used = usage.total if usage is not None else (None if meter.status == 200 else 0)
            await self.gateway.limiter.settle(admitted.ticket, used)
        if usage is None:
            return
        ref = admitted.decision.ref
        self.gateway.usage.add(
            {
                "request_id": meter.response_id or f"gw-{uuid.uuid4().hex}",
                "key_prefix": grant.prefix,
                "usage_token": grant.usage_token,
                "model": ref.base,
                "mod": ref.mod or "",
                "mod_ref": ref.ref or "",
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "streamed": meter.streaming,
            }
        )

    def _refused(self, exc: QuoteAPIError, grant: KeyGrant | None) -> None:
        if isinstance(exc, RateLimitError) and grant is not None:
            logger.info("tenant %s key %s refused: %s limit", grant.tenant, grant.prefix, exc.limit)
            if self.gateway.on_refusal is not None:
                self.gateway.on_refusal(grant.tenant, exc.limit)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def receive_and_follow() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.gateway.start()
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.stop()
            return message

        await self.app(scope, receive_and_follow, send)


def _replayed(scope: Scope, receive: Receive, body: bytes) -> tuple[Scope, Receive]:
    """The scope and receive an in-process app reads `body` from (its length header kept right)."""
    headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    pending: list[Any] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return {**scope, "headers": headers}, replay
