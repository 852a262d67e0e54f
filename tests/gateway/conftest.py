"""The gateway's test platform: a real registry, real `quote serve` replicas, real gateways and Redis.

    registry (SQLite, in a thread)  tenants acme and globex, a `service` key, signed mods
    replicas (processes)            tiny-a: A;  tiny-b: B1, B2  (QUOTE_GATEWAY_SECRET set: gateway only)
    broken replicas (threads)       a port nobody listens on, a server that answers 503
    gateway (process)               `quote gateway --routes routes.yaml`, key cache TTL 1 s

Everything is started once per session; tests create their own keys when they need fresh limits
or clean usage totals.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest

from quote_mod_sdk import keygen, serialize_mod
from quote_registry.api.app import create_registry_app
from quote_registry.client import RegistryClient
from quote_registry.migrate import upgrade
from quote_registry.settings import RegistrySettings
from tests.gateway import mods
from tests.registry.conftest import ADMIN_KEY, RunningRegistry, serve_in_thread
from tests.sdk.conftest import load_seed
from tests.serving.conftest import Server, free_port, start_server, wait_ready

SECRET = "gateway-test-secret-" + "x" * 24
AUTH_TTL_S = 1.0


@dataclass
class Tenant:
    name: str
    key: str
    client: RegistryClient

    def openai(self, base_url: str, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=base_url, api_key=key or self.key, max_retries=0, timeout=60)

    def new_key(self, registry: RunningRegistry, **limits: int) -> str:
        """A fresh infer key for this tenant (admin-made, so it may carry limits)."""
        with RegistryClient(registry.url, ADMIN_KEY) as admin:
            made = admin.create_key(scopes=["infer"], tenant=self.name, name="test", limits=limits or None)
        return str(made["key"])


@dataclass
class Platform:
    registry: RunningRegistry
    service_key: str
    tenants: dict[str, Tenant] = field(default_factory=dict)
    replicas: dict[str, Server] = field(default_factory=dict)


class Gateway:
    def __init__(self, base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.base_url, self.process, self.log = base_url, process, log

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def start_gateway(log: Path, routes: Path, platform: Platform, **env: str) -> Gateway:
    """`quote gateway` as its own process; `env` adds QUOTE_GATEWAY_* settings."""
    port = free_port()
    cmd = [sys.executable, "-m", "quote_cli", "gateway", "--routes", str(routes), "--port", str(port)]
    cmd += ["--registry-url", platform.registry.url, "--log-level", env.pop("log_level", "debug")]
    environ = {**os.environ, "QUOTE_REGISTRY_API_KEY": platform.service_key, "QUOTE_GATEWAY_SECRET": SECRET, **env}
    process = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=environ)
    base = f"http://127.0.0.1:{port}"
    wait_ready(process, base, log, "quote gateway", timeout_s=60)
    return Gateway(base, process, log)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    url = f"sqlite:///{tmp_path_factory.mktemp('gw-registry') / 'registry.db'}"
    upgrade(url)
    settings = RegistrySettings(database_url=url, bootstrap_admin_key=ADMIN_KEY, dev_mode=False)
    base, server, thread = serve_in_thread(create_registry_app(settings))
    yield RunningRegistry(base, settings)
    server.should_exit = True
    thread.join(timeout=10)


def _publish_mods(tenant: Tenant) -> None:
    key = keygen()
    tenant.client.add_signing_key(key.public_b64())
    tenant.client.publish(f"{tenant.name}_private", "1.0.0", serialize_mod(load_seed("skeleton").my_mod), key=key)
    tenant.client.publish(f"{tenant.name}_public", "1.0.0", serialize_mod(mods.plain), key=key, visibility="public")
    tenant.client.publish("slow", "1.0.0", serialize_mod(mods.slow), key=key)
    tenant.client.publish("crawl", "1.0.0", serialize_mod(mods.crawl), key=key)


@pytest.fixture(scope="session")
def platform(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with RegistryClient(registry.url, ADMIN_KEY) as admin:
        admin.create_tenant("platform")
        service_key = admin.create_key(
            scopes=["service", "infer"], tenant="platform", name="gateway", acts_for=["acme", "globex"]
        )["key"]
    found = Platform(registry, service_key)
    for name in ("acme", "globex"):
        creds = registry.tenant_with_keys(name)
        found.tenants[name] = Tenant(name, creds["key"], RegistryClient(registry.url, creds["key"]))
        _publish_mods(found.tenants[name])
    logs = tmp_path_factory.mktemp("replicas")
    env = {"QUOTE_REGISTRY_API_KEY": service_key, "QUOTE_GATEWAY_SECRET": SECRET}

    def replica(label: str, model: str) -> tuple[str, Server]:
        args = ("--registry-url", registry.url, "--served-model-name", model, "--max-batch", "8")
        return label, start_server(logs / f"{label}.log", *args, env=env)

    with ThreadPoolExecutor(3) as pool:
        found.replicas = dict(pool.map(lambda a: replica(*a), [("A", "tiny-a"), ("B1", "tiny-b"), ("B2", "tiny-b")]))
    yield found
    for server in found.replicas.values():
        stop_process(server.process)


class Unavailable:
    """A real HTTP server that answers every request with 503, counting them (and the /v1 ones apart)."""

    def __init__(self) -> None:
        self.hits = 0
        self.api_hits = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.hits += 1
        self.api_hits += scope["path"].startswith("/v1/")
        body = b'{"error": {"message": "overloaded", "type": "server_error", "param": null, "code": null}}'
        await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="session")
def unavailable() -> Iterator[tuple[str, Unavailable]]:
    app = Unavailable()
    url, server, thread = serve_in_thread(app)
    yield url + "/v1", app
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: connections are refused


def write_routes(path: Path, platform: Platform, *extra_tiny_a: str) -> Path:
    r = platform.replicas
    tiny_a = [*extra_tiny_a, r["A"].v1]
    path.write_text(
        f"""
routes:
  - model: tiny-a
    replicas: {tiny_a}
    tenants: [acme, globex]
  - model: tiny-b
    replicas: [{r["B1"].v1}, {r["B2"].v1}]
    tenants: [acme]
    mods: [slow, acme_public, "globex:globex_public"]
"""
    )
    return path


@pytest.fixture(scope="session")
def gateway(
    platform: Platform,
    unavailable: tuple[str, Unavailable],
    dead_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("gateway")
    routes = write_routes(folder / "routes.yaml", platform, dead_url, unavailable[0])
    gw = start_gateway(
        folder / "gateway.log",
        routes,
        platform,
        QUOTE_GATEWAY_AUTH_TTL_S=str(AUTH_TTL_S),
        QUOTE_GATEWAY_MAX_REQUEST_BYTES="65536",
        QUOTE_GATEWAY_BODY_TIMEOUT_S="1",
    )
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server of our own on a free port (Debian's redis-server)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    port, folder = free_port(), tmp_path_factory.mktemp("redis")
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)]
    process = subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    stop_process(process)
