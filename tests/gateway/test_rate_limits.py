"""Per-key limits held across two gateway processes that share one Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from .conftest import Gateway, Platform, start_gateway, write_routes

CHAT = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}


@pytest.fixture(scope="module")
def gateways(platform: Platform, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Gateway]]:
    folder = tmp_path_factory.mktemp("redis-gateways")
    routes = write_routes(folder / "routes.yaml", platform)
    started = [
        start_gateway(folder / f"gateway-{i}.log", routes, platform, QUOTE_GATEWAY_REDIS_URL=redis_url)
        for i in range(2)
    ]
    yield started
    for gw in started:
        gw.stop()


def _post(gw: Gateway, key: str, model: str = "tiny-a", **body: object) -> httpx.Response:
    return httpx.post(
        gw.v1 + "/chat/completions",
        json={"model": model, **CHAT, **body},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


def test_requests_per_minute_hold_across_gateways(gateways: list[Gateway], platform: Platform) -> None:
    key = platform.tenants["acme"].new_key(platform.registry, requests_per_minute=5)
    statuses = [_post(gateways[i % 2], key) for i in range(8)]
    assert [r.status_code for r in statuses] == [200] * 5 + [429] * 3
    refused = statuses[-1]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    error = refused.json()["error"]
    assert (
        error["type"] == "requests"
        and error["code"] == "rate_limit_exceeded"
        and "5 requests per minute" in error["message"]
    )


def _slots_taken(redis_url: str, key: str) -> int:
    """Concurrency slots of `key` in Redis (the layout redis_limits.py documents)."""
    with redis.Redis.from_url(redis_url) as client:
        return int(client.zcard(f"quote:limits:{{{key.split('_')[1]}}}:inflight"))


def test_concurrent_requests_hold_across_gateways(gateways: list[Gateway], platform: Platform, redis_url: str) -> None:
    key = platform.tenants["acme"].new_key(platform.registry, max_concurrent=1)
    statuses: list[int] = []
    slow = threading.Thread(target=lambda: statuses.append(_post(gateways[0], key, "tiny-b/slow").status_code))
    slow.start()
    while not _slots_taken(redis_url, key) and slow.is_alive():  # `slow` holds its slot for a second
        time.sleep(0.02)
    refused = _post(gateways[1], key)  # the other gateway sees the slot taken
    slow.join()
    assert statuses == [200]
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "concurrency"
    assert refused.headers["retry-after"] == "1"
    assert _post(gateways[1], key).status_code == 200  # the slot came back when `slow` finished


def test_tokens_per_minute_hold_across_gateways(gateways: list[Gateway], platform: Platform) -> None:
    key = platform.tenants["globex"].new_key(platform.registry, tokens_per_minute=300)
    first = _post(gateways[0], key, max_tokens=200)  # reserves ~220 tokens while it runs
    assert first.status_code == 200
    used = first.json()["usage"]["total_tokens"]
    # Fits only because the first reservation was replaced by the real count when it ended.
    assert _post(gateways[1], key, max_tokens=260 - used).status_code == 200
    refused = _post(gateways[0], key, max_tokens=290)
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "tokens"
    assert 1 <= int(refused.headers["retry-after"]) <= 60


def test_refusals_are_counted_for_prometheus(gateways: list[Gateway], platform: Platform) -> None:
    key = platform.tenants["globex"].new_key(platform.registry, requests_per_minute=1)
    assert [_post(gateways[0], key).status_code for _ in range(2)] == [200, 429]
    metrics = httpx.get(gateways[0].base_url + "/metrics").text
    assert 'quote_rate_limit_refusals_total{limit="requests",tenant="globex"}' in metrics


def test_keys_without_limits_are_not_limited(gateways: list[Gateway], platform: Platform) -> None:
    key = platform.tenants["globex"].new_key(platform.registry)
    assert {_post(gateways[i % 2], key).status_code for i in range(6)} == {200}
