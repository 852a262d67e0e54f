"""What clients get wrong, and what they try: every refusal a clear 4xx in OpenAI's shape, nothing leaks."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.serving.conftest import free_port

from .conftest import Gateway, Platform, start_gateway, write_routes

GARBLED = [
    "garbage-key-1234567890",
    "qk_",
    "qk__secretpart",
    "qk_abc",
    "qk_abc_",
    "qk_ab-cd_secret",
    "qk_" + "a" * 5000,
]


def _chat(gw: Gateway, headers: dict[str, str], body: object = None, **kwargs: object) -> httpx.Response:
    body = body if body is not None else {"model": "tiny-a", "messages": [{"role": "user", "content": "Hi"}]}
    return httpx.post(gw.v1 + "/chat/completions", json=body, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def _error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error  # type: ignore[no-any-return]


def _bearer(platform: Platform, tenant: str = "acme") -> dict[str, str]:
    return {"Authorization": f"Bearer {platform.tenants[tenant].key}"}


def test_missing_and_garbled_keys_are_401(gateway: Gateway) -> None:
    assert _error(_chat(gateway, {}), 401)["code"] == "missing_api_key"
    assert _error(_chat(gateway, {"Authorization": "Basic dXNlcjpwYXNz"}), 401)["code"] == "missing_api_key"
    for key in [*GARBLED, "qk_0123456789ab_" + "s" * 43]:  # the last is well formed but unknown
        error = _error(_chat(gateway, {"Authorization": f"Bearer {key}"}), 401)
        assert error["code"] == "invalid_api_key" and key not in str(error)


def test_a_key_without_the_infer_scope_is_403(gateway: Gateway, platform: Platform) -> None:
    publisher = platform.tenants["acme"].client.create_key(scopes=["publish"], name="ci")["key"]
    assert _error(_chat(gateway, {"Authorization": f"Bearer {publisher}"}), 403)["code"] == "insufficient_scope"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "no-such-model", "messages": []}, 404, "model_not_found"),
        ({"model": "tiny-a/../tiny-b", "messages": []}, 404, "model_not_found"),
        ({"messages": [{"role": "user", "content": "Hi"}]}, 400, "missing_model"),
        ([1, 2, 3], 400, "invalid_body"),
    ],
)
def test_bad_bodies_are_clear_4xx(gateway: Gateway, platform: Platform, body: object, status: int, code: str) -> None:
    assert _error(_chat(gateway, _bearer(platform), body), status)["code"] == code


def test_invalid_json_is_400(gateway: Gateway, platform: Platform) -> None:
    headers = {**_bearer(platform), "content-type": "application/json"}
    response = httpx.post(gateway.v1 + "/chat/completions", content=b'{"model": "tiny-a",', headers=headers)
    assert _error(response, 400)["code"] == "json_invalid"


def test_replicas_validate_the_rest_of_the_body(gateway: Gateway, platform: Platform) -> None:
    body = {"model": "tiny-a", "messages": [{"role": "user", "content": "Hi"}], "temperature": 9}
    assert _error(_chat(gateway, _bearer(platform), body), 400)["param"] == "temperature"


def test_oversized_bodies_are_413_declared_or_streamed(gateway: Gateway, platform: Platform) -> None:
    big = {"model": "tiny-a", "messages": [{"role": "user", "content": "x" * 100_000}]}
    assert _error(_chat(gateway, _bearer(platform), big), 413)["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no content-length: the gateway counts as it reads
        yield b'{"model": "tiny-a", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"x" * 10_000
        yield b'"}]}'

    headers = {**_bearer(platform), "content-type": "application/json"}
    response = httpx.post(gateway.v1 + "/chat/completions", content=chunks(), headers=headers, timeout=30)
    assert _error(response, 413)["code"] == "request_too_large"


def _slow_client(gw: Gateway, key: str) -> socket.socket:
    """Headers promise 200 bytes; 10 arrive; then nothing."""
    host, port = gw.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    )
    sock.sendall(head.encode() + b'{"model": ')
    return sock


def _response(sock: socket.socket) -> bytes:
    """A whole HTTP response (headers, then content-length bytes), however it is split into packets."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_slow_clients_get_408_and_the_gateway_stays_responsive(gateway: Gateway, platform: Platform) -> None:
    slow = [_slow_client(gateway, platform.tenants["acme"].key) for _ in range(20)]
    for _ in range(3):  # while twenty clients dawdle, others are served
        assert _chat(gateway, _bearer(platform)).status_code == 200
    for sock in slow:
        answer = _response(sock)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"code":"request_timeout"' in answer.replace(b" ", b"")
        sock.close()
    assert httpx.get(gateway.base_url + "/healthz").status_code == 200


def _aborted(platform: Platform, mod: str) -> float:
    text = httpx.get(platform.replicas["A"].base_url + "/metrics").text
    lines = [line for line in text.splitlines() if line.startswith("quote_requests_total{")]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if f'mod="{mod}"' in line and "abort" in line)


def test_a_client_that_leaves_mid_stream_stops_the_generation(gateway: Gateway, platform: Platform) -> None:
    body = {
        "model": "tiny-a/crawl",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 200,
        "stream": True,
        "ignore_eos": True,  # exactly 200 tokens: the random model's EOS must not end it before the client leaves
    }
    before = _aborted(platform, "crawl")
    # (a generous timeout: the tenant's first call of a mod may start and load its worker first)
    with httpx.stream("POST", gateway.v1 + "/chat/completions", json=body, headers=_bearer(platform), timeout=60) as r:
        assert r.status_code == 200
        next(r.iter_lines())  # then leave: 200 tokens at 50 ms each would take 10 s
    deadline = time.monotonic() + 5
    while _aborted(platform, "crawl") == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _aborted(platform, "crawl") == before + 1  # the replica cancelled it
    assert _chat(gateway, _bearer(platform)).status_code == 200


def test_publishing_through_the_gateway_is_refused(gateway: Gateway, platform: Platform) -> None:
    response = httpx.post(gateway.v1 + "/mods", json={"name": "x"}, headers=_bearer(platform))
    assert _error(response, 403)["code"] == "publish_through_registry"


def test_a_tenant_header_from_the_client_is_ignored(gateway: Gateway, platform: Platform) -> None:
    body = {"model": "tiny-a/globex_private", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    spoofed = {**_bearer(platform, "acme"), "x-quote-tenant": "globex", "x-quote-gateway-signature": "t=1,v1=00"}
    assert _error(_chat(gateway, spoofed, body), 404)["code"] == "mod_not_found"  # resolved as acme
    assert _chat(gateway, _bearer(platform, "globex"), body).status_code == 200


def test_replicas_refuse_requests_that_went_around_the_gateway(platform: Platform) -> None:
    replica = platform.replicas["A"]
    body = {"model": "tiny-a", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    forged = {"x-quote-tenant": "acme", "x-quote-gateway-signature": f"t={int(time.time())},v1={'0' * 64}"}
    for headers in ({}, _bearer(platform), forged):
        response = httpx.post(replica.v1 + "/chat/completions", json=body, headers=headers)
        assert _error(response, 401)["code"] == "gateway_signature_required"
    assert httpx.get(replica.base_url + "/readyz").status_code == 200  # probes stay open


def test_an_unreachable_registry_is_503_not_an_open_door(platform: Platform, tmp_path) -> None:  # type: ignore[no-untyped-def]
    routes = write_routes(tmp_path / "routes.yaml", platform)
    broken = Platform(
        type(platform.registry)(f"http://127.0.0.1:{free_port()}", platform.registry.settings), platform.service_key
    )
    gw = start_gateway(tmp_path / "gateway.log", routes, broken)
    try:
        assert _error(_chat(gw, _bearer(platform)), 503)["code"] == "auth_unavailable"
    finally:
        gw.stop()


def test_no_key_ever_reaches_the_logs(gateway: Gateway, platform: Platform) -> None:
    logs = gateway.log.read_text() + "".join(s.log.read_text() for s in platform.replicas.values())
    secrets = [t.key for t in platform.tenants.values()] + [platform.service_key] + GARBLED[:1]
    for secret in secrets:
        assert secret not in logs
        if secret.startswith("qk_"):
            assert secret.split("_", 2)[2] not in logs
