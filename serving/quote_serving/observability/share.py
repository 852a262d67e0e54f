"""Share links: a token that grants read access to one request's trace, and nothing else.

    POST /v1/traces/{id}/share ─► ShareLinks.issue(id) ─► "<expires>.<signature>"
    GET  /v1/traces/{id}?share=<token> ─► ShareLinks.verify(id, token)

The token is an HMAC-SHA256 over the request id and the expiry, keyed by `QUOTE_SHARE_SECRET`:
nothing is stored server-side, a token for one trace says nothing about another, and every
replica holding the same secret accepts it. Without a configured secret a development server
makes a random one (links then last until it restarts); outside development mode sharing stays
off until a secret of at least 32 bytes is set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

__all__ = ["MIN_SECRET_BYTES", "ShareGrant", "ShareLinks", "share_links_from_settings"]

logger = logging.getLogger(__name__)
MIN_SECRET_BYTES = 32
_DOMAIN = b"quote/trace-share/v1\x00"  # keeps these signatures apart from any other use of the key


@dataclass(frozen=True, slots=True)
class ShareGrant:
    token: str
    expires_at: int  # unix seconds


class ShareLinks:
    """Issues and checks share tokens for traces."""

    def __init__(self, secret: bytes, *, ttl_s: int) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"a share secret needs at least {MIN_SECRET_BYTES} bytes, got {len(secret)}")
        self._secret = secret
        self.ttl_s = ttl_s

    def issue(self, request_id: str, *, now: float | None = None) -> ShareGrant:
        expires = int(now if now is not None else time.time()) + self.ttl_s
        return ShareGrant(f"{expires}.{self._sign(request_id, expires)}", expires)

    def verify(self, request_id: str, token: str, *, now: float | None = None) -> bool:
        """True only for an unexpired token issued for exactly this request id."""
        expires_text, _, signature = token.partition(".")
        if not expires_text.isdigit() or not signature:
            return False
        expires = int(expires_text)
        if expires < (now if now is not None else time.time()):
            return False
        return hmac.compare_digest(signature, self._sign(request_id, expires))

    def _sign(self, request_id: str, expires: int) -> str:
        message = _DOMAIN + request_id.encode() + b"\x00" + str(expires).encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def share_links_from_settings(secret: str | None, *, ttl_s: int, dev_mode: bool) -> ShareLinks | None:
    """Links keyed by the configured secret; a random key in development; None (off) otherwise."""
    if secret is not None:
        return ShareLinks(secret.encode(), ttl_s=ttl_s)
    if dev_mode:
        logger.info("no QUOTE_SHARE_SECRET: trace share links last until this server restarts")
        return ShareLinks(secrets.token_bytes(MIN_SECRET_BYTES), ttl_s=ttl_s)
    logger.warning("trace share links are off: set QUOTE_SHARE_SECRET (at least %d bytes)", MIN_SECRET_BYTES)
    return None
