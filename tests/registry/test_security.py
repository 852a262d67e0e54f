"""Tenant isolation without an existence oracle, signature checks, key handling."""

from __future__ import annotations

import hmac
import logging

import pytest

from quote_mod_sdk import keygen, serialize_mod, sign_bundle
from quote_registry.client import RegistryClient, RegistryClientError
from quote_registry.services import auth
from tests.sdk.conftest import load_seed

from .conftest import RunningRegistry


def bundle() -> dict:  # type: ignore[type-arg]
    return serialize_mod(load_seed("skeleton").my_mod)


@pytest.fixture
def two_tenants(registry: RunningRegistry):  # type: ignore[no-untyped-def]
    clients, keys = {}, {}
    for name in ("tenant-a", "tenant-b"):
        creds = registry.tenant_with_keys(name)
        clients[name] = RegistryClient(registry.url, creds["key"])
        keys[name] = keygen()
        clients[name].add_signing_key(keys[name].public_b64())
    clients["tenant-b"].publish("secret_mod", "1.0.0", bundle(), key=keys["tenant-b"])
    return clients, keys


def _error(call) -> RegistryClientError:  # type: ignore[no-untyped-def]
    with pytest.raises(RegistryClientError) as info:
        call()
    return info.value


def test_private_mods_of_another_tenant_are_indistinguishable_from_missing(two_tenants) -> None:  # type: ignore[no-untyped-def]
    clients, _keys = two_tenants
    a = clients["tenant-a"]
    missing = _error(lambda: a.resolve("tenant-b:no_such_mod"))
    for call in (
        lambda: a.resolve("tenant-b:secret_mod"),
        lambda: a.show("tenant-b:secret_mod"),
        lambda: a.alias("tenant-b:secret_mod", "stable", "1.0.0"),
        lambda: a.yank("tenant-b:secret_mod", "1.0.0"),
    ):
        err = _error(call)
        assert err.status == 404 == missing.status
        assert err.message.replace("secret_mod", "X") == missing.message.replace("no_such_mod", "X")
    assert all(m["name"] != "secret_mod" for m in a.list_mods(include_public=True))
    assert _error(lambda: a.resolve("secret_mod")).status == 404  # "secret_mod" in a's own namespace


def test_public_mods_are_readable_but_not_writable_by_others(two_tenants) -> None:  # type: ignore[no-untyped-def]
    clients, _ = two_tenants
    clients["tenant-b"].set_visibility("secret_mod", "public")
    a = clients["tenant-a"]
    assert a.resolve("tenant-b:secret_mod")["version"] == "1.0.0"
    assert any(m["name"] == "secret_mod" for m in a.list_mods(include_public=True))
    assert _error(lambda: a.yank("tenant-b:secret_mod", "1.0.0")).status == 404
    assert _error(lambda: a.alias("tenant-b:secret_mod", "x", "1.0.0")).status == 404


def test_tampered_bundle_bad_signature_and_foreign_key_are_rejected_at_publish(two_tenants) -> None:  # type: ignore[no-untyped-def]
    clients, keys = two_tenants
    a = clients["tenant-a"]
    payload = {**bundle(), "name": "m"}
    signature = sign_bundle(payload, keys["tenant-a"]).as_dict()
    tampered = {**payload, "source": payload["source"] + "\nEVIL = 1\n"}
    body = {"version": "1.0.0", "bundle": tampered, "signature": signature}
    err = _error(lambda: a._call("POST", "/v1/mods/m/versions", json=body))
    assert err.status == 400 and "does not match the signed digest" in err.message
    forged = {**signature, "signature": sign_bundle(payload, keygen()).signature}
    err = _error(lambda: a._call("POST", "/v1/mods/m/versions", json={**body, "bundle": payload, "signature": forged}))
    assert "does not verify" in err.message
    err = _error(lambda: a.publish("m", "1.0.0", payload, key=keys["tenant-b"]))  # b's key is not trusted by a
    assert "unknown or revoked" in err.message


def test_revoked_signing_key_is_rejected_at_publish_and_not_trusted_at_load(two_tenants) -> None:  # type: ignore[no-untyped-def]
    clients, keys = two_tenants
    b = clients["tenant-b"]
    b.revoke_signing_key(keys["tenant-b"].key_id)
    assert "unknown or revoked" in _error(lambda: b.publish("other", "1.0.0", bundle(), key=keys["tenant-b"])).message
    resolved = b.resolve("secret_mod")
    assert resolved["signature"]["key_id"] == keys["tenant-b"].key_id
    assert resolved["trusted_keys"] == []  # serving refuses to load it (see tests/serving/test_registry_mods.py)


def test_revoked_and_expired_api_keys_stop_working(registry: RunningRegistry) -> None:
    creds = registry.tenant_with_keys("shortlived")
    client = RegistryClient(registry.url, creds["key"])
    assert client.list_mods() == []
    with registry.client() as admin:
        prefix = creds["key"].split("_")[1]
        assert admin.delete(f"/v1/keys/{prefix}").status_code == 200
        expired = admin.post(
            "/v1/keys", json={"tenant": "shortlived", "scopes": ["infer"], "expires_at": "2001-01-01T00:00:00Z"}
        ).json()["key"]
    assert _error(client.list_mods).status == 401
    assert "expired" in _error(RegistryClient(registry.url, expired).list_mods).message
    assert _error(RegistryClient(registry.url, "qk_nope_nothing").list_mods).status == 401
    assert _error(RegistryClient(registry.url, "garbage").list_mods).status == 401


def test_scopes_are_enforced(registry: RunningRegistry) -> None:
    registry.tenant_with_keys("scoped")
    with registry.client() as admin:
        infer_only = admin.post("/v1/keys", json={"tenant": "scoped", "scopes": ["infer"]}).json()["key"]
    client = RegistryClient(registry.url, infer_only)
    assert _error(lambda: client.publish("m", "1.0.0", bundle(), key=None)).status == 403
    assert _error(lambda: client.create_tenant("evil")).status == 403
    assert _error(lambda: client.create_key(scopes=["admin"])).status == 403


def test_keys_are_never_logged(registry: RunningRegistry, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    creds = registry.tenant_with_keys("quiet")
    client = RegistryClient(registry.url, creds["key"])
    client.list_mods()
    _error(RegistryClient(registry.url, creds["key"] + "x").list_mods)
    secret = creds["key"].split("_", 2)[2]
    assert secret not in caplog.text and creds["key"] not in caplog.text


def test_key_comparison_is_constant_time(monkeypatch, sessions, admin_tenant) -> None:  # type: ignore[no-untyped-def]
    calls = []
    real = hmac.compare_digest

    def spy(a, b):  # type: ignore[no-untyped-def]
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    from quote_registry.db import transaction

    from .conftest import ADMIN_KEY

    with transaction(sessions) as session:
        auth.authenticate(session, ADMIN_KEY)
        with pytest.raises(Exception, match="Incorrect"):
            auth.authenticate(session, "qk_unknownp_whatever")
    assert calls == [(64, 64), (64, 64)]  # compared even for an unknown prefix, always full-length digests
