"""How a replica learns the caller's tenant from the gateway: a tenant header signed with a shared secret.

    gateway: sign_tenant(secret, tenant) ─► x-quote-tenant: acme
                                            x-quote-gateway-signature: t=<unix time>,v1=<hex HMAC-SHA256>
    replica: TrustedTenant ─ verifies ─► scope["state"]["tenant"] = "acme" ─► GenerationRequest.tenant,
             mods resolved as that tenant sees them (its own and public), traces filtered by it

The signature covers the time and the tenant, so a header seen on the wire impersonates nobody
else and goes stale after `MAX_SKEW_S`. A replica with a secret serves `/v1/*` only to signed
requests (or to requests an in-process gateway already authenticated): nobody can reach its
models by going around the gateway. Health, readiness and metrics stay open for probes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from quote_serving.gateway.errors import AuthenticationError, send_error

__all__ = ["SIGNATURE_HEADER", "TENANT_HEADER", "TrustedTenant", "sign_tenant", "verify_tenant"]

logger = logging.getLogger(__name__)

TENANT_HEADER = "x-quote-tenant"
SIGNATURE_HEADER = "x-quote-gateway-signature"
MAX_SKEW_S = 300


def _mac(secret: bytes, stamp: str, tenant: str) -> str:
    return hmac.new(secret, f"{stamp}.{tenant}".encode(), hashlib.sha256).hexdigest()


def sign_tenant(secret: bytes, tenant: str, *, now: float | None = None) -> str:
    """The signature header's value for `tenant`."""
    stamp = str(int(now if now is not None else time.time()))
    return f"t={stamp},v1={_mac(secret, stamp, tenant)}"


def verify_tenant(secret: bytes, tenant: str, signature: str, *, now: float | None = None) -> bool:
    fields = dict(part.partition("=")[::2] for part in signature.split(","))
    stamp, mac = fields.get("t", ""), fields.get("v1", "")
    if not stamp.isdigit() or abs((now if now is not None else time.time()) - int(stamp)) > MAX_SKEW_S:
        return False
    return hmac.compare_digest(mac, _mac(secret, stamp, tenant))


class TrustedTenant:
    """Replica-side ASGI middleware: accept `/v1/*` only with a valid gateway signature."""

    def __init__(self, app: ASGIApp, secret: bytes) -> None:
        self.app, self.secret = app, secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        state = scope.setdefault("state", {})
        if state.get("tenant") is None:  # else an in-process gateway authenticated it already
            tenant = self._tenant(scope)
            if tenant is None:
                return await send_error(send, _refusal())
            state["tenant"] = tenant
        await self.app(scope, receive, send)

    def _tenant(self, scope: Scope) -> str | None:
        tenant: str | None = None
        signature: str | None = None
        for name, value in scope["headers"]:
            if name == b"x-quote-tenant":
                tenant = value.decode("latin-1")
            elif name == b"x-quote-gateway-signature":
                signature = value.decode("latin-1")
        if tenant and signature and verify_tenant(self.secret, tenant, signature):
            return tenant
        logger.warning("refused %s %s: no valid gateway signature", scope["method"], scope["path"])
        return None


def _refusal() -> AuthenticationError:
    return AuthenticationError(
        "This server accepts requests only through the Quote gateway; call the gateway with your API key.",
        code="gateway_signature_required",
    )
