"""Registry fixtures: a throwaway PostgreSQL cluster (initdb/pg_ctl), SQLite, and real HTTP servers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from quote_registry.api.app import create_registry_app
from quote_registry.db import make_engine, make_sessionmaker, transaction
from quote_registry.devdb import PostgresUnavailable, create_database, postgres_cluster
from quote_registry.migrate import upgrade
from quote_registry.services import tenants
from quote_registry.settings import RegistrySettings
from tests.ports import free_port as _free_port

ADMIN_KEY = "qk_admin0test_" + "s" * 40


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server of our own on 127.0.0.1; yields a URL prefix without a database name."""
    try:
        with postgres_cluster() as server:
            yield server
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind, migrated to head."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        url = create_database(request.getfixturevalue("postgres_server"))
    upgrade(url)
    return url


@pytest.fixture
def sessions(database_url: str) -> Any:
    return make_sessionmaker(make_engine(database_url))


class RunningRegistry:
    def __init__(self, url: str, settings: RegistrySettings) -> None:
        self.url, self.settings = url, settings

    def client(self, key: str | None = ADMIN_KEY) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def tenant_with_keys(self, name: str) -> dict[str, str]:
        """Create a tenant and an infer+publish key for it; returns {'tenant', 'key'}."""
        with self.client() as admin:
            assert admin.post("/v1/tenants", json={"name": name}).status_code == 201
            made = admin.post("/v1/keys", json={"tenant": name, "scopes": ["infer", "publish"], "name": "ci"})
            assert made.status_code == 201, made.text
        return {"tenant": name, "key": made.json()["key"]}


def serve_in_thread(app: Any) -> tuple[str, uvicorn.Server, threading.Thread]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


@pytest.fixture
def registry(database_url: str) -> Iterator[RunningRegistry]:
    """A real registry server on 127.0.0.1 over a fresh database (signed bundles only)."""
    settings = RegistrySettings(database_url=database_url, bootstrap_admin_key=ADMIN_KEY, dev_mode=False)
    url, server, thread = serve_in_thread(create_registry_app(settings))
    yield RunningRegistry(url, settings)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def admin_tenant(sessions: Any) -> Any:
    with transaction(sessions) as session:
        tenants.bootstrap_admin(session, raw_key=ADMIN_KEY)
