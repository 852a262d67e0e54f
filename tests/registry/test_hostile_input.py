"""What an attacker sends the registry: every refusal a 4xx in the registry's error shape, never a 500.

Each case was a 500 (or a 502 retried three times through the gateway) before names, versions, refs
and cursors were checked against one bounded grammar (quote_mod_sdk.names) ahead of any query.
"""

from __future__ import annotations

import pytest

from quote_mod_sdk import keygen, sign_bundle
from quote_registry.client import RegistryClient

from .conftest import RunningRegistry
from .test_integrity import variant
from .test_publish_and_resolve import bundle

HUGE = "9" * 5000


def _refused(response, status: int = 400) -> dict[str, object]:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    return error  # type: ignore[no-any-return]


@pytest.fixture
def tenant(registry: RunningRegistry) -> tuple[RunningRegistry, str]:
    creds = registry.tenant_with_keys("hostile")
    key = keygen()
    client = RegistryClient(registry.url, creds["key"])
    client.add_signing_key(key.public_b64())
    client.publish("good", "1.0.0", variant(0), key=key)
    return registry, creds["key"]


@pytest.mark.parametrize("version", [f"{HUGE}.0.0", f"1.{HUGE}.0", f"1.0.0-{HUGE}", "1.0.0-" + "a." * 5000 + "a"])
def test_versions_with_huge_numbers_are_400(tenant: tuple[RunningRegistry, str], version: str) -> None:
    registry, key = tenant
    with registry.client(key) as http:
        body = {"version": version, "bundle": variant(1)}
        assert "semantic version" in str(_refused(http.post("/v1/mods/good/versions", json=body))["message"])


@pytest.mark.parametrize("ref", ["^", "~", ",", f"^{HUGE}.0.0", f">={HUGE}.0.0", "x" * 5000, "1.0.0,,", "\u0000"])
def test_malformed_refs_are_400_not_a_lookup(tenant: tuple[RunningRegistry, str], ref: str) -> None:
    registry, key = tenant
    with registry.client(key) as http:
        _refused(http.get("/v1/mods/good/resolve", params={"ref": ref}))


@pytest.mark.parametrize("name", ["a" * 10_000, "bad%00name", "..%2Fetc", "a%20b", "-dash-first"])
def test_malformed_mod_names_are_4xx(tenant: tuple[RunningRegistry, str], name: str) -> None:
    registry, key = tenant
    with registry.client(key) as http:
        response = http.get(f"/v1/mods/{name}/resolve")
        assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize("path", ["/v1/mods", "/v1/audit"])
@pytest.mark.parametrize("after", [str(10**20), "-1", HUGE, "abc"])
def test_pagination_cursors_are_bounded(tenant: tuple[RunningRegistry, str], path: str, after: str) -> None:
    registry, key = tenant
    with registry.client(key) as http:
        response = http.get(path, params={"after": after})
        assert 400 <= response.status_code < 500, response.text
        assert http.get(path, params={"after": str(2**31 - 1)}).status_code == 200  # the largest id is a fine cursor
        assert 400 <= http.get(path, params={"after": str(2**31)}).status_code < 500


@pytest.mark.parametrize("signature", ["abc", 42, [], {"digest": 1}, {"key_id": "k", "digest": "d"}])
def test_seed_publish_with_a_malformed_signature_is_400(registry: RunningRegistry, signature: object) -> None:
    creds = registry.tenant_with_keys("forger")
    with registry.client(creds["key"]) as http:
        error = _refused(http.post("/v1/mods", json={**bundle(), "version": "1.0.0", "signature": signature}))
        assert error["param"] == "signature"
        key = keygen()
        assert http.post("/v1/signing-keys", json={"public_key": key.public_b64()}).status_code == 201
        payload = bundle()
        good = {**payload, "version": "1.0.0", "signature": sign_bundle(payload, key).as_dict()}
        assert http.post("/v1/mods", json=good).status_code == 201  # the registry carries on
