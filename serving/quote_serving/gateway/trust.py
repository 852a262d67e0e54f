"""How a replica learns the caller's tenant from the gateway: a signature bound to one request.

    gateway: sign_request(secret, tenant, method, path, body)
                 ─► x-quote-tenant: acme
                    x-quote-gateway-signature: t=<unix time>,n=<nonce>,v1=<hex HMAC-SHA256>
    replica: TrustedTenant ─ verifies, then remembers the nonce ─► scope["state"]["tenant"] = "acme"
             ─► GenerationRequest.tenant, mods resolved as that tenant sees them, traces filtered by it

The MAC covers the time, a random nonce, the tenant, the method, the path with its query and the
SHA-256 of the body. A header seen on the wire is therefore good for that one request only: another
path or body fails the MAC, the same request again fails the replay cache (nonces are remembered
until they expire), and any of it goes stale after `MAX_SKEW_S`. A replica with a secret serves
`/v1/*` only to signed requests (or to requests an in-process gateway already authenticated).
Health, readiness and metrics are not behind it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict

from starlette.types import ASGIApp, Receive, Scope, Send

from quote_serving.api.body import replay
from quote_serving.gateway.errors import AuthenticationError, send_error

__all__ = [
    "MAX_SKEW_S",
    "SIGNATURE_HEADER",
    "TENANT_HEADER",
    "ReplayCache",
    "TrustedTenant",
    "sign_request",
    "verify_request",
]

logger = logging.getLogger(__name__)

TENANT_HEADER = "x-quote-tenant"
SIGNATURE_HEADER = "x-quote-gateway-signature"
MAX_SKEW_S = 30  # gateway and replica clocks (NTP) agree far better; a captured header dies quickly


def _mac(secret: bytes, stamp: str, nonce: str, tenant: str, method: str, target: str, body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()
    message = "\n".join((stamp, nonce, tenant, method.upper(), target, digest)).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign_request(secret: bytes, tenant: str, method: str, target: str, body: bytes, *, now: float | None = None) -> str:
    """The signature header's value for this one request (`target` = path plus "?query" if any)."""
    stamp = str(int(now if now is not None else time.time()))
    nonce = secrets.token_hex(16)
    return f"t={stamp},n={nonce},v1={_mac(secret, stamp, nonce, tenant, method, target, body)}"


def verify_request(
    secret: bytes, tenant: str, signature: str, method: str, target: str, body: bytes, *, now: float | None = None
) -> str | None:
    """The nonce if `signature` is valid for exactly this request and fresh; None otherwise."""
    fields = dict(part.partition("=")[::2] for part in signature.split(","))
    stamp, nonce, mac = fields.get("t", ""), fields.get("n", ""), fields.get("v1", "")
    if not stamp.isdigit() or len(stamp) > 12 or not (16 <= len(nonce) <= 64):
        return None
    if abs((now if now is not None else time.time()) - int(stamp)) > MAX_SKEW_S:
        return None
    if not hmac.compare_digest(mac, _mac(secret, stamp, nonce, tenant, method, target, body)):
        return None
    return nonce


class ReplayCache:
    """Nonces seen in the last `ttl_s` seconds; a nonce is accepted once."""

    def __init__(self, ttl_s: float = 2 * MAX_SKEW_S, max_entries: int = 1_000_000) -> None:
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_use(self, nonce: str, *, now: float | None = None) -> bool:
        now = now if now is not None else time.monotonic()
        while self._seen and next(iter(self._seen.values())) < now:
            self._seen.popitem(last=False)
        if nonce in self._seen:
            return False
        if len(self._seen) >= self.max_entries:
            return False  # full of live nonces: refuse rather than forget one that could be replayed
        self._seen[nonce] = now + self.ttl_s
        return True


class TrustedTenant:
    """Replica-side ASGI middleware: accept `/v1/*` only with a valid, unused gateway signature."""

    def __init__(self, app: ASGIApp, secret: bytes) -> None:
        self.app, self.secret = app, secret
        self.replays = ReplayCache()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        state = scope.setdefault("state", {})
        if state.get("tenant") is not None:  # an in-process gateway authenticated it already
            return await self.app(scope, receive, send)
        body, receive = await _buffered(receive)
        tenant = self._tenant(scope, body)
        if tenant is None:
            return await send_error(send, _refusal())
        state["tenant"] = tenant
        await self.app(scope, receive, send)

    def _tenant(self, scope: Scope, body: bytes) -> str | None:
        tenant: str | None = None
        signature: str | None = None
        for name, value in scope["headers"]:
            if name == TENANT_HEADER.encode():
                tenant = value.decode("latin-1")
            elif name == SIGNATURE_HEADER.encode():
                signature = value.decode("latin-1")
        if tenant and signature:
            query = scope.get("query_string", b"")
            path = scope["path"].removeprefix(scope.get("root_path", "")) or scope["path"]
            target = path + (f"?{query.decode('latin-1')}" if query else "")
            nonce = verify_request(self.secret, tenant, signature, scope["method"], target, body)
            if nonce is not None and self.replays.first_use(nonce):
                return tenant
        logger.warning("refused %s %s: no valid, unused gateway signature", scope["method"], scope["path"])
        return None


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body (BodyLimit, outside us, has bounded it), and a receive that replays it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    return body, replay(body, receive)


def _refusal() -> AuthenticationError:
    return AuthenticationError(
        "This server accepts requests only through the Quote gateway; call the gateway with your API key.",
        code="gateway_signature_required",
    )
