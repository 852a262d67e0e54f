"""`/metrics` names tenants and mods: with a token configured, only a scrape that sends it reads them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import Server, start_server

from .conftest import Gateway, Platform, start_gateway, stop_process, write_routes

TOKEN = "metrics-token-" + "m" * 24
WRONG = ["", "Bearer", "Bearer wrong-token-xxxxxxxxxx", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN]


@pytest.fixture(scope="module")
def guarded_replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("metrics-replica") / "serve.log"
    srv = start_server(log, env={"QUOTE_METRICS_TOKEN": TOKEN})
    yield srv
    stop_process(srv.process)


@pytest.fixture(scope="module")
def guarded_gateway(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("metrics-gateway")
    routes = write_routes(folder / "routes.yaml", platform)
    gw = start_gateway(folder / "gateway.log", routes, platform, QUOTE_GATEWAY_METRICS_TOKEN=TOKEN)
    yield gw
    gw.stop()


def _refused_without_the_token(base_url: str) -> None:
    for value in WRONG:
        headers = {"Authorization": value} if value else {}
        response = httpx.get(base_url + "/metrics", headers=headers, timeout=30)
        assert response.status_code == 401, (value, response.text)
        error = response.json()["error"]
        assert error["code"] == "metrics_token_required" and error["type"] == "invalid_request_error"
        assert "quote_" not in response.text
    allowed = httpx.get(base_url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert allowed.status_code == 200 and "quote_" in allowed.text


def test_a_replicas_metrics_need_the_token(guarded_replica: Server, tmp_path: Path) -> None:
    # A request first, so there is something tenant- and mod-labelled to hide.
    body = {"model": "quote-tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    assert httpx.post(guarded_replica.v1 + "/chat/completions", json=body, timeout=60).status_code == 200
    _refused_without_the_token(guarded_replica.base_url)


def test_the_gateways_metrics_need_the_token(guarded_gateway: Gateway) -> None:
    _refused_without_the_token(guarded_gateway.base_url)


def test_without_a_token_metrics_stay_open_for_development(gateway: Gateway) -> None:
    assert httpx.get(gateway.base_url + "/metrics", timeout=30).status_code == 200
