"""The registry's side of the gateway: service keys, introspection, key limits, usage records."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from quote_registry.api.app import create_registry_app
from quote_registry.client import RegistryClient, RegistryClientError
from quote_registry.db import make_engine
from quote_registry.migrate import upgrade
from quote_registry.models import Base
from quote_registry.settings import RegistrySettings
from tests.registry.conftest import (  # noqa: F401  (fixtures: an empty SQLite and PostgreSQL database)
    ADMIN_KEY,
    RunningRegistry,
    database_url,
    postgres_server,
    serve_in_thread,
)

from .conftest import Platform


def _admin(platform: Platform) -> RegistryClient:
    return RegistryClient(platform.registry.url, ADMIN_KEY)


def _status(call) -> int:  # type: ignore[no-untyped-def]
    with pytest.raises(RegistryClientError) as info:
        call()
    return info.value.status


def test_only_admins_make_service_keys_or_set_limits(platform: Platform) -> None:
    acme = platform.tenants["acme"].client
    assert _status(lambda: acme.create_key(scopes=["service"])) == 403
    assert _status(lambda: acme.create_key(scopes=["infer"], limits={"requests_per_minute": 10**6})) == 403
    own = acme.create_key(scopes=["infer"])
    assert own["limits"] == {"requests_per_minute": None, "tokens_per_minute": None, "max_concurrent": None}
    assert _status(lambda: acme.set_key_limits(own["prefix"], requests_per_minute=10**6)) == 403
    with _admin(platform) as admin:
        changed = admin.set_key_limits(own["prefix"], max_concurrent=3)
    assert changed["limits"]["max_concurrent"] == 3


def test_introspection_needs_a_service_key_and_says_why_a_key_is_refused(platform: Platform) -> None:
    acme = platform.tenants["acme"]
    assert _status(lambda: acme.client.introspect(acme.key)) == 403
    with RegistryClient(platform.registry.url, platform.service_key) as service:
        active = service.introspect(acme.key)
        assert (active["active"], active["tenant"], "secret_hash" in active) == (True, "acme", False)
        key = acme.client.create_key(scopes=["infer"])
        acme.client.revoke_key(key["prefix"])
        assert service.introspect(key["key"]) == {
            "object": "introspection",
            "active": False,
            "reason": "This API key has been revoked.",
        }
        assert service.introspect("not-a-key")["active"] is False


def test_resolving_for_a_tenant_applies_that_tenants_visibility(platform: Platform) -> None:
    with RegistryClient(platform.registry.url, platform.service_key) as service:
        assert service.resolve("acme_private", tenant="acme")["owner"] == "acme"
        assert _status(lambda: service.resolve("acme:acme_private", tenant="globex")) == 404
        assert service.resolve("acme:acme_public", tenant="globex")["owner"] == "acme"
    acme = platform.tenants["acme"].client
    assert _status(lambda: acme.resolve("globex:globex_private", tenant="globex")) == 403  # no impersonation


def test_usage_batches_are_idempotent_and_tenants_see_their_own(platform: Platform) -> None:
    acme, globex = platform.tenants["acme"], platform.tenants["globex"]
    acme_key = acme.client.create_key(scopes=["infer"])
    globex_key = globex.client.create_key(scopes=["infer"])
    acme_prefix, globex_prefix = acme_key["prefix"], globex_key["prefix"]
    with RegistryClient(platform.registry.url, platform.service_key) as service:  # as the gateway does
        tokens = {k["prefix"]: service.introspect(k["key"])["usage_token"] for k in (acme_key, globex_key)}

    def record(prefix: str, tokens_used: int) -> dict[str, object]:
        return {
            "request_id": uuid.uuid4().hex,
            "key_prefix": prefix,
            "usage_token": tokens.get(prefix, "0" * 64),
            "model": "m",
            "mod": "x",
            "prompt_tokens": tokens_used,
            "completion_tokens": 1,
        }

    batch = [record(acme_prefix, 5), record(acme_prefix, 7), record(globex_prefix, 11), record("nosuchkey", 1)]
    with RegistryClient(platform.registry.url, platform.service_key) as service:
        assert service.record_usage(batch) == {
            "object": "usage.batch",
            "accepted": 3,
            "duplicates": 0,
            "unknown_keys": 1,
        }
        assert service.record_usage(batch[:2])["duplicates"] == 2  # a retried batch changes nothing
    assert _status(lambda: acme.client.record_usage(batch)) == 403
    mine = [r for r in acme.client.usage(tenant="globex") if r["key_prefix"] == acme_prefix]
    assert [(r["tenant"], r["requests"], r["prompt_tokens"]) for r in mine] == [("acme", 2, 12)]
    assert all(r["tenant"] == "acme" for r in acme.client.usage(tenant="globex"))


def test_the_models_and_the_migrations_agree(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'schema.db'}"
    upgrade(url)
    with make_engine(url).connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


@pytest.fixture
def fresh_registry(database_url: str) -> Iterator[RunningRegistry]:  # noqa: F811
    """A registry over an empty database of each kind (SQLite, PostgreSQL)."""
    settings = RegistrySettings(database_url=database_url, bootstrap_admin_key=ADMIN_KEY)
    url, server, thread = serve_in_thread(create_registry_app(settings))
    yield RunningRegistry(url, settings)
    server.should_exit = True
    thread.join(timeout=10)


def test_gateways_racing_on_one_batch_count_it_once(fresh_registry: RunningRegistry) -> None:
    creds = fresh_registry.tenant_with_keys("acme")
    with RegistryClient(fresh_registry.url, ADMIN_KEY) as admin:
        service_key = admin.create_key(scopes=["service"], name="gw")["key"]
    prefix = creds["key"].split("_")[1]
    with RegistryClient(fresh_registry.url, service_key) as service:
        token = service.introspect(creds["key"])["usage_token"]
    batch = [
        {"request_id": f"r{i}", "key_prefix": prefix, "usage_token": token, "model": "m", "prompt_tokens": i}
        | {"completion_tokens": 1}
        for i in range(50)
    ]

    def send(_: int) -> int:
        with RegistryClient(fresh_registry.url, service_key) as service:
            return int(service.record_usage(batch)["accepted"])

    with ThreadPoolExecutor(6) as pool:  # six gateways retrying the same batch at once
        accepted = sum(pool.map(send, range(6)))
    assert accepted == 50
    with RegistryClient(fresh_registry.url, ADMIN_KEY) as admin:
        (row,) = admin.usage(tenant="acme")
    assert (row["requests"], row["prompt_tokens"]) == (50, sum(range(50)))


def test_a_service_key_acts_only_for_the_tenants_it_names(platform: Platform) -> None:
    """A stolen replica key reads the private mods of the tenants its routes serve, and of nobody else."""
    with RegistryClient(platform.registry.url, ADMIN_KEY) as admin:
        acme_only = admin.create_key(scopes=["service"], tenant="platform", name="acme-replica", acts_for=["acme"])
        no_tenants = admin.create_key(scopes=["service"], tenant="platform", name="gateway-only")
        assert acme_only["acts_for"] == ["acme"] and no_tenants["acts_for"] == []
        assert _status(lambda: admin.create_key(scopes=["infer"], acts_for=["acme"])) == 400  # service keys only
        assert _status(lambda: admin.create_key(scopes=["service"], acts_for=["Not A Tenant"])) == 400
    with RegistryClient(platform.registry.url, acme_only["key"]) as replica:
        assert replica.resolve("acme_private", tenant="acme")["owner"] == "acme"
        missing = _status(lambda: replica.resolve("globex_private", tenant="no-such-tenant"))
        assert _status(lambda: replica.resolve("globex_private", tenant="globex")) == missing == 404  # no oracle
        assert _status(lambda: replica.resolve("acme:acme_public", tenant="globex")) == 404
    with RegistryClient(platform.registry.url, no_tenants["key"]) as gateway:
        assert gateway.introspect(platform.tenants["acme"].key)["active"] is True  # it still does its own job
        assert _status(lambda: gateway.resolve("acme_private", tenant="acme")) == 404


def test_a_service_key_records_usage_only_for_keys_it_was_shown(platform: Platform) -> None:
    """Whoever holds a service key cannot bill (or hide usage in) another tenant's key."""
    acme = platform.tenants["acme"]
    victim = acme.client.create_key(scopes=["infer"])
    with RegistryClient(platform.registry.url, ADMIN_KEY) as admin:
        other_service = admin.create_key(scopes=["service"], tenant="platform", name="another-gateway")["key"]
    with RegistryClient(platform.registry.url, platform.service_key) as service:
        real = service.introspect(victim["key"])["usage_token"]

        def forged(token: str) -> dict[str, object]:
            return {"request_id": uuid.uuid4().hex, "key_prefix": victim["prefix"], "usage_token": token}

        base = {"model": "m", "prompt_tokens": 10**6, "completion_tokens": 1}
        for token in ("", "0" * 64, real[:-1] + ("0" if real[-1] != "0" else "1")):
            assert service.record_usage([forged(token) | base])["unknown_keys"] == 1
    with RegistryClient(platform.registry.url, other_service) as stolen:  # a token is only good for its issuer
        assert stolen.record_usage([forged(real) | base])["unknown_keys"] == 1
    with RegistryClient(platform.registry.url, platform.service_key) as service:
        assert service.record_usage([forged(real) | base])["accepted"] == 1
    billed = [r for r in acme.client.usage() if r["key_prefix"] == victim["prefix"]]
    assert [r["requests"] for r in billed] == [1]


def test_usage_tokens_of_any_text_are_refused_not_a_500(platform: Platform) -> None:
    """Found by schemathesis: a non-ASCII token (or a lone surrogate in a prefix) made compare_digest raise."""
    odd = [("é" * 64, "abc"), ("\ud806", "x\ud806y"), ("0" * 64, "😀")]
    with httpx.Client(
        base_url=platform.registry.url, headers={"Authorization": f"Bearer {platform.service_key}"}
    ) as http:
        for token, prefix in odd:
            record = {"request_id": uuid.uuid4().hex, "key_prefix": prefix, "usage_token": token, "model": "m"}
            body = json.dumps({"records": [record | {"prompt_tokens": 1, "completion_tokens": 1}]})
            response = http.post("/v1/usage", content=body, headers={"content-type": "application/json"})
            assert response.status_code in (200, 400), response.text  # lone surrogates are a 400
            assert response.status_code == 400 or response.json()["unknown_keys"] == 1, response.text
