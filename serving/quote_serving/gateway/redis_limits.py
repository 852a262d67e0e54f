"""Per-key limits shared by every gateway replica: the rules of `limits.py`, counted in Redis.

    admit  ─ one Lua call ─► check all three limits, then take all three (or none): atomic, one round trip
    settle ─ one Lua call ─► free the concurrency slot, replace the token reservation by the real count

Keys (a hash tag per subject, so a Redis Cluster keeps one key's counters on one shard):

    quote:limits:{<key prefix>}:requests   INCR; expires a minute after the window's first request
    quote:limits:{<key prefix>}:tokens     INCRBY; same
    quote:limits:{<key prefix>}:inflight   sorted set of slot ids scored by expiry (Redis' own clock),
                                           so a slot a crashed gateway never freed lapses by itself

If Redis cannot be reached the gateway lets requests through (logged): limits protect capacity,
and refusing every tenant because the limiter is down would be the larger outage.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from quote_serving.gateway.limits import WINDOW_S, Limits, Ticket, refusal

__all__ = ["RedisLimiter"]

logger = logging.getLogger(__name__)

_ADMIT = """
local rpm, tpm, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local reserve, lease, lease_ms, window_ms = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if conc >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= conc then return {3, 1000} end
end
if rpm >= 0 and tonumber(redis.call('GET', KEYS[1]) or '0') >= rpm then
  return {1, redis.call('PTTL', KEYS[1])}
end
if tpm >= 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used > 0 and used + reserve > tpm then return {2, redis.call('PTTL', KEYS[2])} end
end
if rpm >= 0 and redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], window_ms) end
if tpm >= 0 then
  local fresh = redis.call('EXISTS', KEYS[2]) == 0
  redis.call('INCRBY', KEYS[2], reserve)
  if fresh then redis.call('PEXPIRE', KEYS[2], window_ms) end
end
if conc >= 0 then
  redis.call('ZADD', KEYS[3], now + lease_ms, lease)
  redis.call('PEXPIRE', KEYS[3], lease_ms)
end
return {0, 0}
"""

_SETTLE = """
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[2], ARGV[2]) end
local delta = tonumber(ARGV[1])
if delta ~= 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('INCRBY', KEYS[1], delta) < 0 then redis.call('SET', KEYS[1], 0, 'KEEPTTL') end
end
return 0
"""

_LIMITS = {1: "requests", 2: "tokens", 3: "concurrency"}


def _keys(subject: str) -> list[str]:
    base = f"quote:limits:{{{subject}}}"
    return [f"{base}:requests", f"{base}:tokens", f"{base}:inflight"]


def _arg(limit: int | None) -> int:
    return -1 if limit is None else limit


class RedisLimiter:
    def __init__(self, url: str, *, lease_s: float = 900.0, window_s: float = WINDOW_S) -> None:
        import redis.asyncio as redis  # only gateways configured with Redis need the client

        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self._redis: Any = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
        self._admit = self._redis.register_script(_ADMIT)
        self._settle = self._redis.register_script(_SETTLE)
        self.lease_ms, self.window_ms = int(lease_s * 1000), int(window_s * 1000)

    async def admit(self, subject: str, limits: Limits, reserve_tokens: int) -> Ticket:
        lease = uuid.uuid4().hex if limits.max_concurrent is not None else ""
        args: list[int | str] = [
            _arg(limits.requests_per_minute),
            _arg(limits.tokens_per_minute),
            _arg(limits.max_concurrent),
            reserve_tokens,
            lease,
            self.lease_ms,
            self.window_ms,
        ]
        try:
            refused, wait_ms = await self._admit(keys=_keys(subject), args=args)
        except self._errors as exc:
            logger.error("rate limiter unavailable (%s): admitting key %s without limits", exc, subject)
            return Ticket(subject, settled=True)
        if refused:
            limit = _LIMITS[int(refused)]
            allowed = {"requests": limits.requests_per_minute, "tokens": limits.tokens_per_minute}.get(
                limit, limits.max_concurrent
            )
            raise refusal(limit, subject, allowed or 0, max(int(wait_ms), 0) / 1000)
        reserved = reserve_tokens if limits.tokens_per_minute is not None else 0
        return Ticket(subject, reserved_tokens=reserved, lease=lease or None)

    async def settle(self, ticket: Ticket, used_tokens: int | None) -> None:
        if ticket.settled:
            return
        ticket.settled = True
        delta = 0 if used_tokens is None or not ticket.reserved_tokens else used_tokens - ticket.reserved_tokens
        if delta == 0 and ticket.lease is None:
            return
        keys = _keys(ticket.subject)
        try:
            await self._settle(keys=[keys[1], keys[2]], args=[delta, ticket.lease or ""])
        except self._errors as exc:
            logger.error("rate limiter unavailable (%s): key %s keeps its slot until it lapses", exc, ticket.subject)

    async def close(self) -> None:
        await self._redis.aclose()
