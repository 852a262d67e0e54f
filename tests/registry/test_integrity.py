"""Atomic, immutable publishes under concurrency; migrations round trip; bad input is a clear 4xx."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, inspect, select

from quote_mod_sdk import keygen, serialize_mod
from quote_registry.client import RegistryClient, RegistryClientError
from quote_registry.db import make_engine
from quote_registry.migrate import downgrade, upgrade
from quote_registry.models import ModVersion
from tests.sdk.conftest import load_seed

from .conftest import RunningRegistry


def variant(i: int) -> dict:  # type: ignore[type-arg]
    payload = serialize_mod(load_seed("skeleton").my_mod)
    return {**payload, "source": payload["source"] + f"\n# variant {i}\n"}


def test_ten_concurrent_publishes_of_one_version_have_exactly_one_winner(
    registry: RunningRegistry, database_url: str
) -> None:
    creds = registry.tenant_with_keys("racers")
    key = keygen()
    RegistryClient(registry.url, creds["key"]).add_signing_key(key.public_b64())

    def attempt(i: int) -> int:
        with RegistryClient(registry.url, creds["key"]) as client:
            try:
                return 201 if client.publish("race", "1.0.0", variant(i), key=key)[1] else 200
            except RegistryClientError as exc:
                return exc.status

    with ThreadPoolExecutor(10) as pool:
        statuses = sorted(pool.map(attempt, range(10)))
    assert statuses == [201] + [409] * 9
    with make_engine(database_url).connect() as conn:
        assert conn.scalar(select(func.count()).select_from(ModVersion)) == 1


def test_migrations_round_trip(database_url: str) -> None:
    engine = make_engine(database_url)
    assert {"tenants", "api_keys", "signing_keys", "mods", "mod_versions", "aliases", "audit_events"} <= set(
        inspect(engine).get_table_names()
    )
    downgrade(database_url)
    assert set(inspect(make_engine(database_url)).get_table_names()) <= {"alembic_version"}
    upgrade(database_url)
    assert "mod_versions" in inspect(make_engine(database_url)).get_table_names()


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"version": "1.0", "bundle": {}}, 400, "semantic version"),
        ({"version": "01.0.0", "bundle": {}}, 400, "semantic version"),
        ({"version": "1.0.0", "bundle": {"source": "x"}}, 400, "invalid bundle"),
        ({"version": "1.0.0", "bundle": "not an object"}, 400, "bundle"),
        ({"version": "1.0.0"}, 400, "bundle"),
        ({"version": "1.0.0", "bundle": {}, "unexpected": 1}, 400, "unexpected"),
        (
            {
                "version": "1.0.0",
                "bundle": {"language": "python", "module": "m", "entrypoint": "e", "source": "x" * 600_000},
            },
            413,
            "limit",
        ),
    ],
)
def test_bad_publishes_are_4xx_with_a_clear_message(
    registry: RunningRegistry, body: dict, status: int, message: str
) -> None:  # type: ignore[type-arg]
    creds = registry.tenant_with_keys("careless")
    with registry.client(creds["key"]) as http:
        response = http.post("/v1/mods/m/versions", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]


def test_bad_names_aliases_and_refs(registry: RunningRegistry) -> None:
    creds = registry.tenant_with_keys("sloppy")
    client = RegistryClient(registry.url, creds["key"])
    key = keygen()
    client.add_signing_key(key.public_b64())
    with pytest.raises(RegistryClientError, match="mod names"):
        client.publish("bad name!", "1.0.0", variant(0), key=key)
    client.publish("good", "1.0.0", variant(0), key=key)
    with pytest.raises(RegistryClientError, match="no version or alias 'nightly'"):
        client.resolve("good", "nightly")
    with pytest.raises(RegistryClientError, match="alias names"):
        client.alias("good", "1bad", "1.0.0")
    with pytest.raises(RegistryClientError, match="no version '9.9.9'"):
        client.alias("good", "stable", "9.9.9")
    with pytest.raises(RegistryClientError, match="bad version range|semantic version"):
        client.resolve("good", ">=banana")
    with pytest.raises(RegistryClientError, match="public"):
        client.set_visibility("good", "everyone")
