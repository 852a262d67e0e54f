"""KeyAuthenticator against the real registry: one introspection per key per TTL, garbage never sent."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from quote_serving.gateway.errors import AuthenticationError, ServiceUnavailableError
from quote_serving.gateway.keys import IntrospectionFailed, KeyAuthenticator, bearer_key, key_prefix
from quote_serving.gateway.registry_link import RegistryLink

from .conftest import Platform


class Counting:
    """The real registry link, counted, and switchable to 'unreachable'."""

    def __init__(self, platform: Platform) -> None:
        self.link = RegistryLink(platform.registry.url, platform.service_key)
        self.calls = 0
        self.down = False

    async def __call__(self, key: str) -> dict[str, Any]:
        self.calls += 1
        if self.down:
            raise IntrospectionFailed("switched off by the test")
        return await self.link.introspect(key)


def run(platform: Platform, body: Callable[[KeyAuthenticator, Counting], Awaitable[None]], **options: float) -> None:
    async def main() -> None:
        counting = Counting(platform)
        try:
            await body(KeyAuthenticator(counting, **{"ttl_s": 60.0, **options}), counting)
        finally:
            await counting.link.close()

    asyncio.run(main())


def test_a_key_is_introspected_once_per_ttl_even_under_concurrency(platform: Platform) -> None:
    key = platform.tenants["acme"].key

    async def body(auth: KeyAuthenticator, counting: Counting) -> None:
        grants = await asyncio.gather(*(auth.authenticate(key) for _ in range(20)))
        assert {g.tenant for g in grants} == {"acme"} and counting.calls == 1
        assert grants[0].prefix == key_prefix(key) and grants[0].allows("infer")

    run(platform, body)


def test_malformed_keys_never_reach_the_registry(platform: Platform) -> None:
    async def body(auth: KeyAuthenticator, counting: Counting) -> None:
        for raw in (None, "", "sk-openai-style", "qk_", "qk_no-secret", "qk_" + "a" * 300 + "_x", "qk_é_x"):
            with pytest.raises(AuthenticationError):
                await auth.authenticate(raw)
        assert counting.calls == 0

    run(platform, body)


def test_unknown_keys_are_remembered_too(platform: Platform) -> None:
    async def body(auth: KeyAuthenticator, counting: Counting) -> None:
        for _ in range(3):
            with pytest.raises(AuthenticationError, match="Incorrect API key"):
                await auth.authenticate("qk_0000deadbeef_" + "x" * 40)
        assert counting.calls == 1

    run(platform, body)


def test_a_stale_answer_bridges_a_registry_outage_then_it_is_503(platform: Platform) -> None:
    key = platform.tenants["globex"].key

    async def body(auth: KeyAuthenticator, counting: Counting) -> None:
        await auth.authenticate(key)
        counting.down = True
        await asyncio.sleep(0.06)  # past the TTL, within the stale window
        assert (await auth.authenticate(key)).tenant == "globex"
        await asyncio.sleep(0.1)  # past both
        with pytest.raises(ServiceUnavailableError):
            await auth.authenticate(key)

    run(platform, body, ttl_s=0.05, stale_s=0.05)


def test_bearer_and_x_api_key_headers() -> None:
    assert bearer_key([(b"authorization", b"Bearer  qk_a_b ")]) == "qk_a_b"
    assert bearer_key([(b"x-api-key", b"qk_a_b")]) == "qk_a_b"
    assert bearer_key([(b"authorization", b"Basic abc")]) is None
    assert bearer_key([]) is None
