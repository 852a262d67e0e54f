"""Two tenants, the real openai client, a gateway in front of real `quote serve` replicas."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from .conftest import AUTH_TTL_S, Gateway, Platform, Unavailable

CHAT = [{"role": "user", "content": "Hi"}]


def _chat(client: openai.OpenAI, model: str, **kwargs):  # type: ignore[no-untyped-def]
    return client.chat.completions.create(model=model, messages=CHAT, max_tokens=4, **kwargs)


def _replica_requests(platform: Platform, label: str, tenant: str, mod: str = "none") -> float:
    """quote_requests_total of one replica for one tenant and mod (its /metrics is open to probes)."""
    text = httpx.get(platform.replicas[label].base_url + "/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("quote_requests_total{") and f'tenant="{tenant}"' in line and f'mod="{mod}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_each_model_goes_to_its_own_replicas(gateway: Gateway, platform: Platform) -> None:
    acme = platform.tenants["acme"].openai(gateway.v1)
    before = {label: _replica_requests(platform, label, "acme") for label in ("A", "B1", "B2")}
    a = _chat(acme, "tiny-a")
    b = _chat(acme, "tiny-b")
    assert a.model == "tiny-a" and b.model == "tiny-b" and a.usage.completion_tokens >= 1
    after = {label: _replica_requests(platform, label, "acme") for label in ("A", "B1", "B2")}
    assert after["A"] - before["A"] == 1  # the replicas saw the tenant (GenerationRequest.tenant)
    assert after["B1"] + after["B2"] - before["B1"] - before["B2"] == 1


def test_models_list_shows_only_the_tenants_models(gateway: Gateway, platform: Platform) -> None:
    assert {m.id for m in platform.tenants["acme"].openai(gateway.v1).models.list()} == {"tiny-a", "tiny-b"}
    assert {m.id for m in platform.tenants["globex"].openai(gateway.v1).models.list()} == {"tiny-a"}


def test_a_model_the_tenant_may_not_use_is_indistinguishable_from_a_missing_one(
    gateway: Gateway, platform: Platform
) -> None:
    globex = platform.tenants["globex"].openai(gateway.v1)
    with pytest.raises(openai.NotFoundError) as refused:
        _chat(globex, "tiny-b")
    with pytest.raises(openai.NotFoundError) as missing:
        _chat(globex, "tiny-z")
    assert refused.value.body["code"] == missing.value.body["code"] == "model_not_found"
    assert refused.value.body["message"].replace("tiny-b", "X") == missing.value.body["message"].replace("tiny-z", "X")


def test_tenants_reach_their_own_and_public_mods_only(gateway: Gateway, platform: Platform) -> None:
    acme = platform.tenants["acme"].openai(gateway.v1)
    globex = platform.tenants["globex"].openai(gateway.v1)
    assert _chat(acme, "tiny-a/acme_private").choices[0].finish_reason in ("stop", "length")
    assert _chat(globex, "tiny-a/acme:acme_public").usage.completion_tokens >= 1
    for model in ("tiny-a/acme_private", "tiny-a/acme:acme_private"):
        with pytest.raises(openai.NotFoundError, match="does not exist or you do not have access"):
            _chat(globex, model)


def test_a_mod_the_route_does_not_serve_is_forbidden(gateway: Gateway, platform: Platform) -> None:
    acme = platform.tenants["acme"].openai(gateway.v1)
    with pytest.raises(openai.PermissionDeniedError) as info:
        _chat(acme, "tiny-b/acme_private")
    assert info.value.body["code"] == "mod_not_allowed"
    assert _chat(acme, "tiny-b/globex:globex_public").usage.completion_tokens >= 1


def test_streaming_passes_through_with_the_tenant(gateway: Gateway, platform: Platform) -> None:
    acme = platform.tenants["acme"].openai(gateway.v1)
    stream = acme.chat.completions.create(model="tiny-a/acme_public", messages=CHAT, max_tokens=8, stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert all(c.usage is None for c in chunks)  # the gateway's own usage chunk never reaches the client


def test_a_revoked_key_stops_working_within_the_ttl(gateway: Gateway, platform: Platform) -> None:
    tenant = platform.tenants["globex"]
    key = tenant.new_key(platform.registry)
    client = tenant.openai(gateway.v1, key)
    assert _chat(client, "tiny-a").usage.completion_tokens >= 1
    tenant.client.revoke_key(key.split("_")[1])
    time.sleep(AUTH_TTL_S + 0.5)
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        _chat(client, "tiny-a")


def test_replicas_share_the_load_by_outstanding_requests(gateway: Gateway, platform: Platform) -> None:
    acme = platform.tenants["acme"].openai(gateway.v1)
    before = {label: _replica_requests(platform, label, "acme", "slow") for label in ("B1", "B2")}
    with ThreadPoolExecutor(4) as pool:  # `slow` holds each request 1 s: all four are in flight together
        replies = list(pool.map(lambda _: _chat(acme, "tiny-b/slow"), range(4)))
    assert all(r.choices[0].finish_reason for r in replies)
    spread = [_replica_requests(platform, label, "acme", "slow") - before[label] for label in ("B1", "B2")]
    assert spread == [2, 2]


def test_dead_and_not_ready_replicas_get_no_traffic(
    gateway: Gateway, platform: Platform, unavailable: tuple[str, Unavailable]
) -> None:
    acme = platform.tenants["acme"].openai(gateway.v1)
    _, overloaded = unavailable
    deadline = time.monotonic() + 30
    while overloaded.hits == overloaded.api_hits and time.monotonic() < deadline:
        time.sleep(0.1)  # the gateway's first /readyz round reaches it
    assert overloaded.hits > overloaded.api_hits, "the gateway checks every replica's /readyz"
    time.sleep(0.5)
    api_hits = overloaded.api_hits
    for _ in range(6):  # tiny-a lists a refused port and a not-ready server before the live replica
        assert _chat(acme, "tiny-a").usage.completion_tokens >= 1
    assert overloaded.api_hits == api_hits, "a replica whose /readyz fails gets no requests"


def test_keys_never_reach_the_replicas_or_the_logs(gateway: Gateway, platform: Platform) -> None:
    acme = platform.tenants["acme"]
    _chat(acme.openai(gateway.v1), "tiny-a")
    logs = gateway.log.read_text() + "".join(s.log.read_text() for s in platform.replicas.values())
    for tenant in platform.tenants.values():
        assert tenant.key not in logs and tenant.key.split("_", 2)[2] not in logs
    assert platform.service_key not in logs
    assert re.search(r"qk_[0-9a-f]+_\S{20,}", logs) is None
