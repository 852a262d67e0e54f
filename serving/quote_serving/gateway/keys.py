"""Who is calling: API keys checked against the registry, remembered for a short TTL.

    Authorization: Bearer qk_<prefix>_<secret>
        ─ malformed? ─► 401 at once (the registry never sees garbage)
        ─ cache (sha256 of the key ─► grant or refusal, `ttl_s`) ─ hit ─► KeyGrant
        ─ miss ─► one introspection per key at a time (concurrent callers share it) ─► cache

A revoked key keeps working for at most `ttl_s`, the price of not asking the registry on every
request. If the registry is unreachable, answers up to `stale_s` past their TTL are still used
(logged); past that the gateway refuses with a 503 rather than let unknown keys in. Keys are
cached by hash and logged by prefix only.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from quote_serving.gateway.errors import AuthenticationError, ServiceUnavailableError
from quote_serving.gateway.limits import Limits

__all__ = ["IntrospectionFailed", "KeyAuthenticator", "KeyGrant", "bearer_key", "key_prefix"]

logger = logging.getLogger(__name__)

_MAX_KEY_CHARS = 256


class IntrospectionFailed(Exception):
    """The registry could not answer (unreachable, 5xx, or it refused the gateway's own key)."""


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """What a valid key may do: its tenant, scopes, expiry (epoch seconds) and limits."""

    tenant: str
    prefix: str
    scopes: frozenset[str]
    limits: Limits
    expires_at: float | None = None
    usage_token: str = ""  # the registry's proof it showed us this key: usage records carry it

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    @classmethod
    def from_introspection(cls, answer: dict[str, Any]) -> KeyGrant:
        expires = answer.get("expires_at")
        limits = answer.get("limits") or {}
        return cls(
            tenant=str(answer["tenant"]),
            prefix=str(answer["prefix"]),
            scopes=frozenset(answer.get("scopes") or ()),
            limits=Limits(
                limits.get("requests_per_minute"), limits.get("tokens_per_minute"), limits.get("max_concurrent")
            ),
            expires_at=datetime.fromisoformat(expires).timestamp() if expires else None,
            usage_token=str(answer.get("usage_token") or ""),
        )


@dataclass(slots=True)
class _Entry:
    fetched: float
    grant: KeyGrant | None
    reason: str


def bearer_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key from `Authorization: Bearer …` (or `x-api-key`), or None."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
        if name == b"x-api-key":
            return value.decode("latin-1").strip()
    return None


def key_prefix(raw: str) -> str | None:
    """The public prefix of a well-formed `qk_<prefix>_<secret>` key (safe to log), else None."""
    if len(raw) > _MAX_KEY_CHARS or not raw.isascii() or not raw.startswith("qk_"):
        return None
    prefix, sep, secret = raw[3:].partition("_")
    return prefix if sep and prefix.isalnum() and secret else None


class KeyAuthenticator:
    def __init__(
        self,
        introspect: Callable[[str], Awaitable[dict[str, Any]]],
        *,
        ttl_s: float,
        stale_s: float = 30.0,
        max_entries: int = 100_000,
    ) -> None:
        self._introspect = introspect
        self.ttl_s, self.stale_s, self.max_entries = ttl_s, stale_s, max_entries
        self._cache: OrderedDict[bytes, _Entry] = OrderedDict()
        self._inflight: dict[bytes, asyncio.Future[_Entry]] = {}  # one introspection per key at a time

    async def authenticate(self, raw: str | None) -> KeyGrant:
        """The grant of key `raw`; AuthenticationError (401) or ServiceUnavailableError (503) otherwise."""
        if not raw:
            raise AuthenticationError(
                "You didn't provide an API key. Pass it as 'Authorization: Bearer <key>'.", code="missing_api_key"
            )
        prefix = key_prefix(raw)
        if prefix is None:
            raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")
        entry = await self._entry(raw, prefix)
        grant = entry.grant
        if grant is None:
            raise AuthenticationError(entry.reason or "Incorrect API key provided.", code="invalid_api_key")
        if grant.expires_at is not None and grant.expires_at <= time.time():
            raise AuthenticationError("This API key has expired.", code="invalid_api_key")
        return grant

    async def _entry(self, raw: str, prefix: str) -> _Entry:
        digest = hashlib.sha256(raw.encode()).digest()
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and now - cached.fetched < self.ttl_s:
            return cached
        task = self._inflight.get(digest)
        if task is None:
            # A task of its own: a caller that gives up does not cancel the answer others wait for.
            task = self._inflight[digest] = asyncio.ensure_future(self._fetch(raw, prefix, digest, cached))
            task.add_done_callback(lambda done: self._settled(digest, done))
        return await asyncio.shield(task)

    def _settled(self, digest: bytes, task: asyncio.Future[_Entry]) -> None:
        self._inflight.pop(digest, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so an error nobody awaited any more is not reported as lost

    async def _fetch(self, raw: str, prefix: str, digest: bytes, cached: _Entry | None) -> _Entry:
        try:
            answer = await self._introspect(raw)
        except IntrospectionFailed as exc:
            if cached is not None and time.monotonic() - cached.fetched < self.ttl_s + self.stale_s:
                logger.warning("registry unreachable (%s): using a stale answer for key %s", exc, prefix)
                return cached
            logger.error("registry unreachable (%s): cannot check key %s", exc, prefix)
            raise ServiceUnavailableError(
                "The gateway cannot check API keys right now; retry shortly.", code="auth_unavailable"
            ) from exc
        grant = KeyGrant.from_introspection(answer) if answer.get("active") else None
        entry = _Entry(time.monotonic(), grant, str(answer.get("reason") or ""))
        if grant is None:
            logger.info("refused key %s: %s", prefix, entry.reason)
        self._remember(digest, entry)
        return entry

    def _remember(self, digest: bytes, entry: _Entry) -> None:
        self._cache[digest] = entry
        self._cache.move_to_end(digest)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
