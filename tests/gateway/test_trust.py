"""The signed tenant header between gateway and replicas: good for one request, once, briefly."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from quote_serving.gateway.trust import MAX_SKEW_S, ReplayCache, sign_request, verify_request

from .conftest import SECRET, Platform

KEY = b"s" * 32
BODY = b'{"model": "m"}'


def test_a_signature_names_one_tenant_method_path_and_body() -> None:
    signature = sign_request(KEY, "acme", "POST", "/v1/chat/completions", BODY)
    assert verify_request(KEY, "acme", signature, "POST", "/v1/chat/completions", BODY)
    assert not verify_request(KEY, "globex", signature, "POST", "/v1/chat/completions", BODY)
    assert not verify_request(b"t" * 32, "acme", signature, "POST", "/v1/chat/completions", BODY)
    assert not verify_request(KEY, "acme", signature, "GET", "/v1/chat/completions", BODY)
    assert not verify_request(KEY, "acme", signature, "POST", "/v1/traces", BODY)
    assert not verify_request(KEY, "acme", signature, "POST", "/v1/chat/completions?x=1", BODY)
    assert not verify_request(KEY, "acme", signature, "POST", "/v1/chat/completions", BODY + b" ")


def test_every_signature_has_its_own_nonce() -> None:
    a, b = (sign_request(KEY, "acme", "POST", "/v1/x", BODY, now=1000.0) for _ in range(2))
    assert a != b


def test_signatures_go_stale() -> None:
    old = sign_request(KEY, "acme", "POST", "/v1/x", BODY, now=time.time() - MAX_SKEW_S - 5)
    assert not verify_request(KEY, "acme", old, "POST", "/v1/x", BODY)
    future = sign_request(KEY, "acme", "POST", "/v1/x", BODY, now=time.time() + MAX_SKEW_S + 5)
    assert not verify_request(KEY, "acme", future, "POST", "/v1/x", BODY)


def test_garbage_signatures_are_refused() -> None:
    for signature in ("", "t=abc,v1=00", "v1=" + "0" * 64, "t=1", ",,,", "t=1,n=,v1=", "t=" + "9" * 5000):
        assert not verify_request(KEY, "acme", signature, "POST", "/v1/x", BODY)


def test_the_replay_cache_accepts_a_nonce_once_and_forgets_it_after_expiry() -> None:
    cache = ReplayCache(ttl_s=10, max_entries=2)
    assert cache.first_use("a", now=0) and not cache.first_use("a", now=5)
    assert cache.first_use("b", now=5)
    assert not cache.first_use("c", now=6), "full of live nonces: refuse, never forget a live one"
    assert cache.first_use("c", now=11)  # "a" expired at 10, freeing a place
    assert cache.first_use("a", now=16)  # and once "b" (15) expires, "a" is new again


def _signed(target: str, body: bytes, tenant: str = "acme") -> dict[str, str]:
    signature = sign_request(SECRET.encode(), tenant, "POST", target, body)
    return {"x-quote-tenant": tenant, "x-quote-gateway-signature": signature, "content-type": "application/json"}


def test_a_captured_header_cannot_be_replayed_or_moved_at_a_real_replica(platform: Platform) -> None:
    replica = platform.replicas["A"]
    body = json.dumps({"model": "tiny-a", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}).encode()
    headers = _signed("/v1/chat/completions", body)
    first = httpx.post(replica.v1 + "/chat/completions", content=body, headers=headers, timeout=60)
    assert first.status_code == 200, first.text
    replayed = httpx.post(replica.v1 + "/chat/completions", content=body, headers=headers, timeout=60)
    assert replayed.status_code == 401 and replayed.json()["error"]["code"] == "gateway_signature_required"

    other = json.dumps({"model": "tiny-a", "messages": [{"role": "user", "content": "Other"}]}).encode()
    fresh = _signed("/v1/chat/completions", body)
    for target, content in (("/completions", body), ("/chat/completions", other)):  # another path, another body
        response = httpx.post(replica.v1 + target, content=content, headers=fresh, timeout=60)
        assert response.status_code == 401, response.text


@pytest.mark.parametrize("skew", [-MAX_SKEW_S - 10, MAX_SKEW_S + 10])
def test_stale_signatures_are_refused_by_a_real_replica(platform: Platform, skew: int) -> None:
    replica = platform.replicas["A"]
    body = json.dumps({"model": "tiny-a", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}).encode()
    signature = sign_request(SECRET.encode(), "acme", "POST", "/v1/chat/completions", body, now=time.time() + skew)
    headers = {"x-quote-tenant": "acme", "x-quote-gateway-signature": signature, "content-type": "application/json"}
    assert httpx.post(replica.v1 + "/chat/completions", content=body, headers=headers, timeout=60).status_code == 401
