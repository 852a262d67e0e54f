"""The limit rules, the same in one process (MemoryLimiter) and shared through Redis (RedisLimiter)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from quote_serving.gateway.errors import RateLimitError
from quote_serving.gateway.limits import Limiter, Limits, MemoryLimiter
from quote_serving.gateway.redis_limits import RedisLimiter
from tests.serving.conftest import free_port


@pytest.fixture(params=["memory", "redis"])
def make_limiter(request: pytest.FixtureRequest) -> Callable[[], Limiter]:
    if request.param == "memory":
        return MemoryLimiter
    url = request.getfixturevalue("redis_url")
    return lambda: RedisLimiter(url)


def run(make: Callable[[], Limiter], body: Callable[[Limiter, str], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        limiter = make()
        try:
            return await body(limiter, uuid.uuid4().hex[:12])  # a fresh subject: Redis outlives each test
        finally:
            await limiter.close()

    return asyncio.run(main())


def test_requests_per_minute(make_limiter: Callable[[], Limiter]) -> None:
    async def body(limiter: Limiter, key: str) -> None:
        limits = Limits(requests_per_minute=3)
        for _ in range(3):
            await limiter.settle(await limiter.admit(key, limits, 1), 1)
        with pytest.raises(RateLimitError) as refused:
            await limiter.admit(key, limits, 1)
        assert refused.value.limit == "requests" and 1 <= refused.value.retry_after_s <= 60
        await limiter.admit("another" + key, limits, 1)  # keys are counted apart

    run(make_limiter, body)


def test_concurrent_requests(make_limiter: Callable[[], Limiter]) -> None:
    async def body(limiter: Limiter, key: str) -> None:
        limits = Limits(max_concurrent=2)
        first, _ = await limiter.admit(key, limits, 1), await limiter.admit(key, limits, 1)
        with pytest.raises(RateLimitError) as refused:
            await limiter.admit(key, limits, 1)
        assert refused.value.limit == "concurrency" and refused.value.retry_after_s == 1
        await limiter.settle(first, None)
        await limiter.settle(first, None)  # settling twice frees one slot only once
        await limiter.admit(key, limits, 1)
        with pytest.raises(RateLimitError):
            await limiter.admit(key, limits, 1)

    run(make_limiter, body)


def test_tokens_per_minute_reserve_then_settle(make_limiter: Callable[[], Limiter]) -> None:
    async def body(limiter: Limiter, key: str) -> None:
        limits = Limits(tokens_per_minute=150)
        first = await limiter.admit(key, limits, 100)
        with pytest.raises(RateLimitError) as refused:
            await limiter.admit(key, limits, 100)  # 100 reserved + 100 > 150
        assert refused.value.limit == "tokens"
        await limiter.settle(first, 10)  # it used 10: the other 90 come back
        second = await limiter.admit(key, limits, 100)
        await limiter.settle(second, None)  # unknown usage: the reservation stands
        with pytest.raises(RateLimitError):
            await limiter.admit(key, limits, 50)

    run(make_limiter, body)


def test_a_lone_request_larger_than_the_limit_still_runs(make_limiter: Callable[[], Limiter]) -> None:
    async def body(limiter: Limiter, key: str) -> None:
        limits = Limits(tokens_per_minute=100)
        await limiter.admit(key, limits, 1000)
        with pytest.raises(RateLimitError):
            await limiter.admit(key, limits, 1)

    run(make_limiter, body)


def test_keys_take_the_gateways_defaults_for_what_they_leave_unset() -> None:
    defaults = Limits(requests_per_minute=60, tokens_per_minute=10_000, max_concurrent=4)
    assert Limits(requests_per_minute=5).or_defaults(defaults) == Limits(5, 10_000, 4)
    assert Limits().unlimited and not Limits(max_concurrent=1).unlimited


def test_an_unreachable_redis_lets_requests_through() -> None:
    async def main() -> None:
        limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0")
        try:
            ticket = await limiter.admit("k", Limits(requests_per_minute=1), 1)
            await limiter.admit("k", Limits(requests_per_minute=1), 1)
            await limiter.settle(ticket, 5)
        finally:
            await limiter.close()

    asyncio.run(main())
