"""Traces as a service: two replicas ship to the store (PostgreSQL), tenants read them through the gateway.

acme, globex ─► gateway ─► replicas R1, R2 (tiny) ─ finished traces ─► registry trace store (PostgreSQL)
                  └─ GET /v1/traces, /v1/traces/{id}, share links, /v1/usage, recent errors ─► the same store
                  └─ /timeline, opened from the Grafana dashboards' data links with a tenant's key
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pytest

from quote_registry.api.app import create_registry_app
from quote_registry.client import RegistryClient
from quote_registry.devdb import create_database
from quote_registry.migrate import upgrade
from quote_registry.settings import RegistrySettings
from quote_serving.observability.dashboards import data_links
from tests.observability.test_timeline_browser import browser, by_css, grafana_link, wait
from tests.registry.conftest import ADMIN_KEY, RunningRegistry, postgres_server, serve_in_thread
from tests.serving.conftest import free_port, wait_ready

from .conftest import SECRET, Gateway, Platform, start_gateway, stop_process

__all__ = ["browser", "postgres_server"]  # fixtures shared with the observability and registry tests

pytestmark = pytest.mark.slow  # two replicas started twice: about a minute on a free machine

SHARE_SECRET = "trace-share-secret-" + "s" * 32
T = TypeVar("T")


@dataclass
class Store:
    registry: RunningRegistry
    service_key: str
    keys: dict[str, str]


@pytest.fixture(scope="module")
def store(postgres_server: str) -> Iterator[Store]:
    url = create_database(postgres_server)
    upgrade(url)
    settings = RegistrySettings(
        database_url=url, bootstrap_admin_key=ADMIN_KEY, dev_mode=False, share_secret=SHARE_SECRET
    )
    base, server, thread = serve_in_thread(create_registry_app(settings))
    registry = RunningRegistry(base, settings)
    with RegistryClient(base, ADMIN_KEY) as admin:
        admin.create_tenant("platform")
        service_key = admin.create_key(
            scopes=["service", "infer"], tenant="platform", name="replicas", acts_for=["acme", "globex"]
        )["key"]
    keys = {name: registry.tenant_with_keys(name)["key"] for name in ("acme", "globex")}
    yield Store(registry, service_key, keys)
    server.should_exit = True
    thread.join(timeout=10)


class Replica:
    """`quote serve` on a fixed port, so that it can be restarted behind the same route."""

    def __init__(self, name: str, store: Store, logs: Path) -> None:
        self.name, self.store, self.logs, self.port = name, store, logs, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def v1(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "quote_cli", "serve", "--port", str(self.port), "--model", "tiny"]
        cmd += ["--served-model-name", "tiny-t", "--registry-url", self.store.registry.url, "--log-level", "warning"]
        env = {
            **os.environ,
            "QUOTE_REGISTRY_API_KEY": self.store.service_key,
            "QUOTE_GATEWAY_SECRET": SECRET,
            "QUOTE_SHARE_SECRET": SHARE_SECRET,
            "QUOTE_TRACE_STORE_URL": self.store.registry.url,
            "QUOTE_REPLICA_NAME": self.name,
        }
        log = self.logs / f"{self.name}.log"
        self.process = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)
        wait_ready(self.process, f"http://127.0.0.1:{self.port}", log, "quote serve", timeout_s=120)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


@pytest.fixture(scope="module")
def replicas(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Replica]]:
    logs = tmp_path_factory.mktemp("trace-replicas")
    found = [Replica(name, store, logs) for name in ("R1", "R2")]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda r: r.start(), found))
    yield found
    for replica in found:
        replica.stop()


@pytest.fixture(scope="module")
def gateway(store: Store, replicas: list[Replica], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("trace-gateway")
    routes = folder / "routes.yaml"
    routes.write_text(
        f"routes:\n  - model: tiny-t\n    replicas: {[r.v1 for r in replicas]}\n    tenants: [acme, globex]\n"
    )
    gw = start_gateway(folder / "gateway.log", routes, Platform(store.registry, store.service_key))
    yield gw
    gw.stop()


def _eventually(probe: Callable[[], T | None], what: str, timeout_s: float = 30) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (found := probe()) is not None:
            return found
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def _client(gateway: Gateway, key: str) -> httpx.Client:
    return httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _all_traces(client: httpx.Client) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = client.get("/v1/traces", params=params)
        assert page.status_code == 200, page.text
        found.update({t["id"]: t for t in page.json()["data"]})
        if not page.json()["has_more"]:
            return found
        params["after"] = page.json()["next_cursor"]


def test_traces_outlive_replicas_and_stay_with_their_tenant(
    store: Store, replicas: list[Replica], gateway: Gateway
) -> None:
    acme = openai.OpenAI(base_url=gateway.v1, api_key=store.keys["acme"], max_retries=0)
    globex = openai.OpenAI(base_url=gateway.v1, api_key=store.keys["globex"], max_retries=0)
    chat = [{"role": "user", "content": "Hi"}]

    def ask(_: int) -> Any:
        return acme.chat.completions.create(model="tiny-t", messages=chat, max_tokens=6)  # type: ignore[arg-type]

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, range(8)))
    globex.chat.completions.create(model="tiny-t", messages=chat, max_tokens=3)  # type: ignore[arg-type]
    ids = {a.id for a in answers}

    with _client(gateway, store.keys["acme"]) as client:

        def stored() -> dict[str, dict[str, Any]] | None:
            found = _all_traces(client)
            return found if ids <= set(found) else None

        listed = _eventually(stored, "acme's traces stored")
        assert set(listed) == ids  # and not globex's
        assert {t["replica"] for t in listed.values()} == {"R1", "R2"}
        shares = {}
        for answer in answers:
            opened = client.get(f"/v1/traces/{answer.id}").json()
            assert opened["model"] == "tiny-t" and len(opened["tokens"]) >= answer.usage.completion_tokens  # type: ignore[union-attr]
            share = client.post(f"/v1/traces/{answer.id}/share")
            assert share.status_code == 200, share.text
            assert share.json()["url"].startswith(gateway.base_url + "/timeline?trace=")
            shares[answer.id] = share.json()["token"]

        def usage_equal() -> bool | None:
            rows = client.get("/v1/usage").json()["data"]
            used = sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows if r["model"] == "tiny-t")
            return True if used == sum(a.usage.total_tokens for a in answers) else None  # type: ignore[union-attr]

        _eventually(usage_equal, "usage through the gateway equals the responses' usage")

    for replica in replicas:  # both replicas restart: their memory is gone, the store is not
        replica.stop()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda r: r.start(), replicas))
    # The gateway's health checks must see them back before anything else is routed (the next
    # test's first call would meet "no ready replicas"); globex asks, acme's traces are checked below.
    with _client(gateway, store.keys["globex"]) as client:

        def routed() -> bool | None:
            body = {"model": "tiny-t", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
            return True if client.post("/v1/chat/completions", json=body).status_code == 200 else None

        _eventually(routed, "the gateway routes to the restarted replicas")

    anonymous = httpx.Client(base_url=gateway.base_url, timeout=30)
    with _client(gateway, store.keys["acme"]) as client, _client(gateway, store.keys["globex"]) as other, anonymous:
        assert set(_all_traces(client)) == ids
        for request_id, token in shares.items():
            assert client.get(f"/v1/traces/{request_id}").status_code == 200
            shared = anonymous.get(f"/v1/traces/{request_id}", params={"share": token})
            assert shared.status_code == 200 and shared.json()["id"] == request_id
            assert anonymous.get(f"/v1/traces/{request_id}", params={"share": token[:-2] + "xx"}).status_code == 403
            for path in (f"/v1/traces/{request_id}", f"/v1/traces/{request_id}/share"):
                theirs = other.request("GET" if path.endswith(request_id) else "POST", path)
                missing = other.request("GET" if path.endswith(request_id) else "POST", path + "nope")
                assert theirs.status_code == 404 and theirs.json()["error"]["type"] == missing.json()["error"]["type"]
        assert not set(_all_traces(other)) & ids
        page = anonymous.get("/timeline")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert anonymous.get("/v1/traces").status_code == 401


def _ingest_problems(store: Store) -> None:
    """Traces with an error and with erasures for both tenants, shipped as a replica ships them."""
    now = time.time()
    records = [
        {"request_id": f"{tenant}-{kind}", "tenant": tenant, "model": "tiny-t", "mod": "ban", "created": now,
         "error": kind == "failed", "erasures": 2 if kind == "erased" else 0, "finish_reason": "stop",
         "body": {"prompt": {"text": "Hi", "tokens": []}, "tokens": [], "mod_calls": []}}
        for tenant in ("acme", "globex") for kind in ("failed", "erased", "clean")
    ]  # fmt: skip
    with httpx.Client(base_url=store.registry.url, headers={"Authorization": f"Bearer {store.service_key}"}) as svc:
        assert svc.post("/v1/traces/ingest", json={"records": records}).json()["accepted"] == len(records)


def test_usage_per_day_and_recent_errors_through_the_gateway_stay_with_their_tenant(
    store: Store, gateway: Gateway
) -> None:
    with RegistryClient(store.registry.url, ADMIN_KEY) as admin:
        key = admin.create_key(scopes=["infer"], tenant="acme", name="daily")["key"]
    acme = openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0)
    chat = [{"role": "user", "content": "Count"}]
    answers = [acme.chat.completions.create(model="tiny-t", messages=chat, max_tokens=2 + i) for i in range(4)]  # type: ignore[arg-type]
    want = sum(a.usage.total_tokens for a in answers)  # type: ignore[union-attr]
    prefix = key.split("_")[1]
    with _client(gateway, key) as client:

        def daily() -> list[dict[str, Any]] | None:
            rows = [r for r in client.get("/v1/usage", params={"group_by": "day"}).json()["data"]]
            mine = [r for r in rows if r["key_prefix"] == prefix]
            used = sum(r["prompt_tokens"] + r["completion_tokens"] for r in mine)
            return rows if used == want and sum(r["requests"] for r in mine) == 4 else None

        rows = _eventually(daily, "usage per day through the gateway equals the responses' usage")
        assert {r["tenant"] for r in rows} == {"acme"} and all(
            r["day"] == time.strftime("%Y-%m-%d", time.gmtime()) for r in rows if r["key_prefix"] == prefix
        )

    _ingest_problems(store)
    with _client(gateway, store.keys["acme"]) as client, _client(gateway, store.keys["globex"]) as other:
        found = client.get("/v1/traces/recent-errors")
        assert found.status_code == 200, found.text
        assert [r["id"] for r in found.json()["data"]] == ["acme-erased", "acme-failed"]
        assert [(m["mod"], m["errors"], m["with_erasures"]) for m in found.json()["by_mod"]] == [("ban", 1, 1)]
        assert [r["id"] for r in client.get("/v1/traces/recent-errors", params={"kind": "error"}).json()["data"]] == [
            "acme-failed"
        ]
        assert client.get("/v1/traces/recent-errors", params={"tenant": "globex"}).status_code == 404
        assert [r["id"] for r in other.get("/v1/traces/recent-errors").json()["data"]] == [
            "globex-erased",
            "globex-failed",
        ]


def test_dashboard_links_open_a_trace_from_the_gateway_with_the_tenants_key(
    browser: Any, store: Store, gateway: Gateway
) -> None:
    acme = openai.OpenAI(base_url=gateway.v1, api_key=store.keys["acme"], max_retries=0)
    answer = acme.chat.completions.create(model="tiny-t", messages=[{"role": "user", "content": "Hi"}], max_tokens=5)  # type: ignore[list-item]
    with _client(gateway, store.keys["acme"]) as client:
        _eventually(lambda: client.get(f"/v1/traces/{answer.id}").status_code == 200 or None, "the trace stored")
    _name, _title, template = next(iter(data_links()))
    link = grafana_link(template, gateway.base_url, answer.id)
    browser.get(link)  # a new tab from Grafana: no key yet, so the trace cannot load
    wait(browser, lambda d: "API key" in by_css(d, "#error")[0].text)
    key_box = by_css(browser, "#api-key")[0]
    key_box.send_keys(store.keys["acme"])
    browser.execute_script("document.getElementById('api-key').dispatchEvent(new Event('change'))")
    wait(browser, lambda d: by_css(d, "#trace-title")[0].text == answer.id and by_css(d, "#tokens .tok"))
    assert answer.id in [li.get_attribute("data-id") for li in by_css(browser, "#trace-list li")]
    for _, _, template in data_links():  # the key now lives in this tab: every link opens at once
        browser.get(grafana_link(template, gateway.base_url, answer.id))
        wait(browser, lambda d: by_css(d, "#trace-title")[0].text == answer.id and by_css(d, "#tokens .tok"))
