"""Publishing signed immutable versions and resolving them, over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from quote_mod_sdk import keygen, load_mod, serialize_mod
from quote_registry.client import RegistryClient, RegistryClientError
from tests.sdk.conftest import load_seed

from .conftest import RunningRegistry


def bundle(seed: str = "skeleton", attr: str = "my_mod") -> dict:  # type: ignore[type-arg]
    return serialize_mod(getattr(load_seed(seed), attr))


@pytest.fixture
def acme(registry: RunningRegistry) -> tuple[RegistryClient, object]:
    creds = registry.tenant_with_keys("acme")
    client = RegistryClient(registry.url, creds["key"])
    key = keygen()
    client.add_signing_key(key.public_b64(), "ci")
    return client, key


def test_publish_then_resolve_returns_the_exact_bundle(acme) -> None:  # type: ignore[no-untyped-def]
    client, key = acme
    info, created = client.publish("my_mod", "1.0.0", bundle(), key=key)
    assert created and info["signed"] and info["version"] == "1.0.0" and info["digest"].startswith("sha256:")
    resolved = client.resolve("my_mod")
    assert resolved["digest"] == info["digest"] and resolved["signature"]["key_id"] == key.key_id
    assert [k["key_id"] for k in resolved["trusted_keys"]] == [key.key_id]
    assert load_mod(resolved["bundle"]).name == "my_mod"


def test_republishing_identical_content_is_a_noop_and_other_content_is_refused(acme) -> None:  # type: ignore[no-untyped-def]
    client, key = acme
    first, created = client.publish("my_mod", "1.0.0", bundle(), key=key)
    again, created_again = client.publish("my_mod", "1.0.0", bundle(), key=key)
    assert created and not created_again and again["digest"] == first["digest"]
    with pytest.raises(RegistryClientError) as info:
        client.publish("my_mod", "1.0.0", bundle("backtrack_phrase", "backtrack_phrase"), key=key)
    assert info.value.status == 409 and "immutable" in info.value.message


def test_latest_aliases_ranges_and_yanks(acme) -> None:  # type: ignore[no-untyped-def]
    client, key = acme
    seeds = [("skeleton", "my_mod"), ("runtime_control", "runtime_control"), ("ban_em_dash", "ban_em_dash")]
    digests = {}
    for version, (seed, attr) in zip(["1.0.0", "1.1.0", "2.0.0-rc.1"], seeds):
        digests[version] = client.publish("m", version, bundle(seed, attr), key=key)[0]["digest"]
    assert client.resolve("m")["version"] == "1.1.0"  # pre-releases are not "latest"
    assert client.resolve("m", "^1.0.0")["version"] == "1.1.0"
    assert client.resolve("m", "~1.0.0")["version"] == "1.0.0"
    client.alias("m", "stable", "1.0.0")
    assert client.resolve("m", "stable")["version"] == "1.0.0"
    client.yank("m", "1.1.0", reason="bad output")
    assert client.resolve("m")["version"] == "1.0.0"  # never chosen by alias or range once yanked
    assert client.resolve("m", ">=1.0.0,<2.0.0")["version"] == "1.0.0"
    pinned = client.resolve("m", "1.1.0")  # still loads when pinned exactly
    assert pinned["yanked"] and pinned["digest"] == digests["1.1.0"]
    with pytest.raises(RegistryClientError, match="yanked"):
        client.alias("m", "stable", "1.1.0")
    client.yank("m", "1.0.0")
    with pytest.raises(RegistryClientError, match="yanked version"):
        client.resolve("m", "stable")
    client.unyank("m", "1.0.0")
    shown = client.show("m")
    assert [v["version"] for v in shown["versions"]] == ["1.0.0", "1.1.0", "2.0.0-rc.1"]
    assert shown["aliases"] == {"stable": "1.0.0"}


def test_every_change_is_audited_without_secrets(registry: RunningRegistry, acme) -> None:  # type: ignore[no-untyped-def]
    client, key = acme
    client.publish("m", "1.0.0", bundle(), key=key)
    client.alias("m", "stable", "1.0.0")
    client.yank("m", "1.0.0")
    actions = [e["action"] for e in client.audit()]
    assert {"signing_key.add", "mod.publish", "alias.move", "mod.yank"} <= set(actions)
    with registry.client() as admin:
        everything = admin.get("/v1/audit", params={"limit": 500}).text
    assert "qk_" not in everything  # prefixes only, never keys


def test_listing_is_paginated(acme) -> None:  # type: ignore[no-untyped-def]
    client, key = acme
    for i in range(5):
        client.publish(f"mod{i}", "0.1.0", bundle(), key=key)
    page = client._call("GET", "/v1/mods", params={"limit": 2})
    assert len(page["data"]) == 2 and page["has_more"] and page["next_cursor"]
    assert sorted(m["name"] for m in client.list_mods()) == [f"mod{i}" for i in range(5)]


def test_seed_post_v1_mods_maps_to_a_publish(registry: RunningRegistry) -> None:
    creds = registry.tenant_with_keys("seedy")
    with registry.client(creds["key"]) as http:
        unsigned = http.post("/v1/mods", json=bundle())
        assert unsigned.status_code == 400 and "development mode" in unsigned.json()["error"]["message"]
        key = keygen()
        assert http.post("/v1/signing-keys", json={"public_key": key.public_b64()}).status_code == 201
        from quote_mod_sdk import sign_bundle

        payload = bundle()
        signed = {**payload, "version": "1.2.3", "signature": sign_bundle(payload, key).as_dict()}
        response = http.post("/v1/mods", json=signed)
        assert response.status_code == 201 and response.json()["version"] == "1.2.3"
