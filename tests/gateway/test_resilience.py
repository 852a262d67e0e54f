"""The gateway as a production proxy: a request that reached a replica is never sent to another.

A replica that takes a request and drops the connection (as one the request crashed would) is hit
exactly once and the client gets a clean 502; before, the gateway retried it on the next replica,
so one poisonous request could take down three. Retries stay for requests that provably never
reached a replica (connection refused, or a 503 before any body).
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import Gateway, Platform, start_gateway
from .test_bad_input import _bearer, _error

HI = [{"role": "user", "content": "Hi"}]


class Dropper(socketserver.ThreadingTCPServer):
    """Answers /readyz with 200; reads every other request whole, then closes the socket unanswered."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.api_hits = 0
        super().__init__(("127.0.0.1", 0), _DropHandler)

    @property
    def v1(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _DropHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        while True:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ),
                0,
            )
            while len(body) < length:
                body += sock.recv(65536)
            if head.startswith(b"GET /readyz"):
                sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
                continue
            assert isinstance(self.server, Dropper)
            self.server.api_hits += 1
            sock.shutdown(socket.SHUT_RDWR)
            return


@pytest.fixture(scope="module")
def dropper() -> Iterator[Dropper]:
    server = Dropper()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def fragile_gateway(
    platform: Platform, dropper: Dropper, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    folder: Path = tmp_path_factory.mktemp("fragile")
    routes = folder / "routes.yaml"
    routes.write_text(
        f"""
routes:
  - model: poison
    replicas: [{dropper.v1}, {dropper.v1.replace("/v1", "/v1/")}]
    tenants: [acme]
  - model: tiny-a
    replicas: [{platform.replicas["A"].v1}]
    tenants: [acme]
"""
    )
    gw = start_gateway(folder / "gateway.log", routes, platform, QUOTE_GATEWAY_HEALTH_INTERVAL_S="0.2")
    yield gw
    gw.stop()


def test_a_request_that_reached_a_replica_is_never_retried(
    fragile_gateway: Gateway, platform: Platform, dropper: Dropper
) -> None:
    before = dropper.api_hits
    body = {"model": "poison", "messages": HI, "max_tokens": 2}
    response = httpx.post(fragile_gateway.v1 + "/chat/completions", json=body, headers=_bearer(platform), timeout=30)
    assert _error(response, 502)["code"] == "upstream_unavailable"
    assert dropper.api_hits == before + 1, "one request, one replica: no second replica gets the chance to crash"


def test_repeated_drops_eject_the_replica_and_other_routes_keep_serving(
    fragile_gateway: Gateway, platform: Platform, dropper: Dropper
) -> None:
    body = {"model": "poison", "messages": HI, "max_tokens": 2}
    for _ in range(4):
        response = httpx.post(
            fragile_gateway.v1 + "/chat/completions", json=body, headers=_bearer(platform), timeout=30
        )
        assert 500 <= response.status_code < 504 and response.json()["error"]["type"] == "server_error"
    ok = httpx.post(
        fragile_gateway.v1 + "/chat/completions",
        json={"model": "tiny-a", "messages": HI, "max_tokens": 2},
        headers=_bearer(platform),
        timeout=60,
    )
    assert ok.status_code == 200, ok.text


def test_a_replica_whose_readyz_fails_gets_nothing_and_the_model_is_503(platform: Platform, tmp_path: Path) -> None:
    from quote_serving.gateway.health import readyz_url

    assert readyz_url("http://h:1/v1") == "http://h:1/readyz" and readyz_url("http://h:1/v1/") == "http://h:1/readyz"
    routes = tmp_path / "routes.yaml"
    silent = f"http://127.0.0.1:{_closed_port()}/v1"
    routes.write_text(f"routes:\n  - model: gone\n    replicas: [{silent}]\n    tenants: [acme]\n")
    gw = start_gateway(tmp_path / "gw.log", routes, platform, QUOTE_GATEWAY_HEALTH_INTERVAL_S="0.2")
    try:
        time.sleep(1.0)  # a few check rounds
        body = {"model": "gone", "messages": HI, "max_tokens": 2}
        response = httpx.post(gw.v1 + "/chat/completions", json=body, headers=_bearer(platform), timeout=30)
        assert _error(response, 503)["code"] == "model_not_ready"
    finally:
        gw.stop()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
