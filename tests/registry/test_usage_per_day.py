"""GET /v1/usage?group_by=day: usage per key, model, mod and UTC day, whatever the database's
time zone; a tenant sees only its own days."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from quote_registry.api.app import create_registry_app
from quote_registry.client import RegistryClient
from quote_registry.db import make_engine, make_sessionmaker, transaction
from quote_registry.models import ApiKey, UsageRecord
from quote_registry.settings import RegistrySettings
from tests.registry.conftest import ADMIN_KEY, RunningRegistry, serve_in_thread

# (request, tenant, model, mod, UTC time, prompt, completion): two records either side of midnight UTC.
RECORDS = [
    ("r1", "acme", "tiny", "", datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc), 5, 7),
    ("r2", "acme", "tiny", "", datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc), 1, 2),
    ("r3", "acme", "tiny", "", datetime(2026, 3, 2, 0, 30, tzinfo=timezone.utc), 10, 20),
    ("r4", "acme", "tiny", "ban", datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc), 3, 4),
    ("r5", "globex", "tiny", "", datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc), 100, 100),
]


@pytest.fixture
def registry(database_url: str) -> Iterator[RunningRegistry]:
    """A registry whose PostgreSQL sessions run in Tokyo time, so a local-day grouping would show."""
    if database_url.startswith("postgresql"):
        engine = make_engine(database_url)
        with engine.begin() as connection:
            database = connection.execute(text("SELECT current_database()")).scalar_one()
            connection.execute(text(f"ALTER DATABASE \"{database}\" SET timezone TO 'Asia/Tokyo'"))
        engine.dispose()
    settings = RegistrySettings(database_url=database_url, bootstrap_admin_key=ADMIN_KEY, dev_mode=False)
    url, server, thread = serve_in_thread(create_registry_app(settings))
    yield RunningRegistry(url, settings)
    server.should_exit = True
    thread.join(timeout=10)


def _record(registry: RunningRegistry) -> dict[str, str]:
    keys = {name: registry.tenant_with_keys(name)["key"] for name in ("acme", "globex")}
    prefixes = {name: key.split("_")[1] for name, key in keys.items()}
    sessions = make_sessionmaker(make_engine(registry.settings.database_url))
    with transaction(sessions) as session:  # days in the past: only the database can hold them
        tenant_ids = {p: session.query(ApiKey).filter_by(prefix=p).one().tenant_id for p in prefixes.values()}
        for request_id, tenant, model, mod, at, prompt, completion in RECORDS:
            prefix = prefixes[tenant]
            session.add(
                UsageRecord(
                    request_id=request_id,
                    tenant_id=tenant_ids[prefix],
                    key_prefix=prefix,
                    model=model,
                    mod=mod,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    created_at=at,
                )
            )
    return keys


def test_usage_per_day_is_split_at_utc_midnight_and_scoped_to_the_tenant(registry: RunningRegistry) -> None:
    keys = _record(registry)
    with registry.client(keys["acme"]) as acme:
        rows = acme.get("/v1/usage", params={"group_by": "day"}).json()["data"]
        per_day = {(r["day"], r["mod"]): (r["requests"], r["prompt_tokens"], r["completion_tokens"]) for r in rows}
        assert per_day == {
            ("2026-03-01", ""): (2, 6, 9),
            ("2026-03-02", ""): (1, 10, 20),
            ("2026-03-02", "ban"): (1, 3, 4),
        }
        assert {r["tenant"] for r in rows} == {"acme"}
        flat = acme.get("/v1/usage").json()["data"]
        assert {(r["mod"], r["day"], r["prompt_tokens"]) for r in flat} == {("", None, 16), ("ban", None, 3)}
        window = {"group_by": "day", "since": "2026-03-02T00:00:00Z", "until": "2026-03-02T06:00:00Z"}
        assert [r["day"] for r in acme.get("/v1/usage", params=window).json()["data"]] == ["2026-03-02"]
        assert acme.get("/v1/usage", params={"group_by": "week"}).status_code in (400, 422)
        assert acme.get("/v1/usage", params={"tenant": "globex", "group_by": "day"}).json()["data"] == rows
    with RegistryClient(registry.url, ADMIN_KEY) as admin:
        everyone = admin.usage(per_day=True)
        assert ("globex", "2026-03-01", 100) in {(r["tenant"], r["day"], r["prompt_tokens"]) for r in everyone}
        assert {r["day"] for r in admin.usage(tenant="globex")} == {None}
