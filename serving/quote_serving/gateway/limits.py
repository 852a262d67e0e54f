"""Per-key limits: requests/minute, tokens/minute, concurrent requests — checked before a request goes upstream.

    edge ─ admit(subject, limits, reserve_tokens) ─► Ticket | RateLimitError (429, Retry-After)
         ─ … response relayed …
         ─ settle(ticket, used_tokens)              (frees the concurrency slot, corrects the reservation)

Windows are a minute long and start with the first request after the previous one ended, so a
burst is never split across two windows by the clock. Tokens are only known at the end, so a
request reserves an estimate (its prompt's bytes / 4 plus its max_tokens) when admitted, and
`settle` replaces the estimate with the real count; a request is refused when its reservation
would overrun the window, unless the window is empty (a lone request larger than the limit still
runs, instead of never running). Unknown usage (the client left mid-stream) keeps the estimate.

Two implementations share these rules: `MemoryLimiter` (one gateway process) below, and
`RedisLimiter` (redis_limits.py: every gateway replica shares the counts).
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from quote_serving.gateway.errors import RateLimitError

__all__ = ["WINDOW_S", "Limiter", "Limits", "MemoryLimiter", "Ticket", "refusal"]

WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class Limits:
    """None means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent: int | None = None

    @property
    def unlimited(self) -> bool:
        return self.requests_per_minute is None and self.tokens_per_minute is None and self.max_concurrent is None

    def or_defaults(self, defaults: Limits) -> Limits:
        """Each limit this key leaves unset takes the gateway's default."""
        return Limits(
            self.requests_per_minute if self.requests_per_minute is not None else defaults.requests_per_minute,
            self.tokens_per_minute if self.tokens_per_minute is not None else defaults.tokens_per_minute,
            self.max_concurrent if self.max_concurrent is not None else defaults.max_concurrent,
        )


@dataclass(slots=True)
class Ticket:
    """One admitted request: what to give back when it ends."""

    subject: str
    reserved_tokens: int = 0
    lease: str | None = None  # concurrency slot id
    window: float | None = None  # the tokens window the reservation went into (memory limiter)
    settled: bool = False


class Limiter(Protocol):
    async def admit(self, subject: str, limits: Limits, reserve_tokens: int) -> Ticket:
        """Take a slot or raise RateLimitError."""
        ...

    async def settle(self, ticket: Ticket, used_tokens: int | None) -> None:
        """Free the slot; `used_tokens` replaces the reservation (None: keep it)."""
        ...

    async def close(self) -> None: ...


def refusal(limit: str, subject: str, allowed: int, retry_after_s: float) -> RateLimitError:
    """The 429 for `limit` ('requests', 'tokens' or 'concurrency'), in OpenAI's words."""
    what = {"requests": "requests per minute", "tokens": "tokens per minute", "concurrency": "concurrent requests"}
    wait = max(1, math.ceil(retry_after_s))
    return RateLimitError(
        f"Rate limit reached for API key {subject}: {allowed} {what[limit]}. Please try again in {wait}s.",
        retry_after_s=wait,
        limit=limit,
    )


@dataclass(slots=True)
class _Window:
    started: float
    used: int = 0


@dataclass(slots=True)
class _Counters:
    requests: _Window | None = None
    tokens: _Window | None = None
    in_flight: set[str] = field(default_factory=set)


class MemoryLimiter:
    """Limits within one process (the event loop serialises every check-and-take)."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._subjects: dict[str, _Counters] = {}

    async def admit(self, subject: str, limits: Limits, reserve_tokens: int) -> Ticket:
        now = time.monotonic()
        counters = self._subjects.setdefault(subject, _Counters())
        requests, tokens = self._current(counters.requests, now), self._current(counters.tokens, now)
        self._check(subject, limits, counters, requests, tokens, reserve_tokens, now)
        ticket = Ticket(subject)
        if limits.requests_per_minute is not None:
            counters.requests = requests = requests or _Window(now)
            requests.used += 1
        if limits.tokens_per_minute is not None:
            counters.tokens = tokens = tokens or _Window(now)
            tokens.used += reserve_tokens
            ticket.reserved_tokens, ticket.window = reserve_tokens, tokens.started
        if limits.max_concurrent is not None:
            ticket.lease = uuid.uuid4().hex
            counters.in_flight.add(ticket.lease)
        return ticket

    def _check(
        self,
        subject: str,
        limits: Limits,
        counters: _Counters,
        requests: _Window | None,
        tokens: _Window | None,
        reserve: int,
        now: float,
    ) -> None:
        if limits.max_concurrent is not None and len(counters.in_flight) >= limits.max_concurrent:
            raise refusal("concurrency", subject, limits.max_concurrent, 1)
        rpm = limits.requests_per_minute
        if rpm is not None and requests is not None and requests.used >= rpm:
            raise refusal("requests", subject, rpm, requests.started + self.window_s - now)
        tpm = limits.tokens_per_minute
        if tpm is not None and tokens is not None and tokens.used > 0 and tokens.used + reserve > tpm:
            raise refusal("tokens", subject, tpm, tokens.started + self.window_s - now)

    def _current(self, window: _Window | None, now: float) -> _Window | None:
        return window if window is not None and now - window.started < self.window_s else None

    async def settle(self, ticket: Ticket, used_tokens: int | None) -> None:
        if ticket.settled:
            return
        ticket.settled = True
        counters = self._subjects.get(ticket.subject)
        if counters is None:
            return
        if ticket.lease is not None:
            counters.in_flight.discard(ticket.lease)
        tokens = counters.tokens
        if used_tokens is not None and tokens is not None and tokens.started == ticket.window:
            tokens.used = max(0, tokens.used + used_tokens - ticket.reserved_tokens)

    async def close(self) -> None:
        self._subjects.clear()
