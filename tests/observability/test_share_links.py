"""Share links grant read access to one trace only; the tenant on a request scopes the listing."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx

from quote_serving.observability.share import ShareLinks, share_links_from_settings
from tests.observability.support import MODEL, chat_body


def request_as(http: httpx.Client, tenant: str | None) -> str:
    headers = {"X-Test-Tenant": tenant} if tenant else {}
    response = http.post("/v1/chat/completions", json=chat_body(MODEL, max_tokens=3), headers=headers)
    assert response.status_code == 200
    return str(response.json()["id"])


def test_a_share_token_reads_that_trace_and_no_other(http_local: httpx.Client) -> None:
    mine, other = request_as(http_local, "acme"), request_as(http_local, "acme")
    grant = http_local.post(f"/v1/traces/{mine}/share", headers={"X-Test-Tenant": "acme"}).json()
    assert grant["object"] == "trace.share"
    url = urlparse(grant["url"])
    assert url.path == "/timeline" and parse_qs(url.query) == {"trace": [mine], "share": [grant["token"]]}

    stranger = {"X-Test-Tenant": "globex"}
    assert http_local.get(f"/v1/traces/{mine}", headers=stranger).status_code == 404
    shared = http_local.get(f"/v1/traces/{mine}", params={"share": grant["token"]}, headers=stranger)
    assert shared.status_code == 200 and shared.json()["id"] == mine
    for request_id, token in [(other, grant["token"]), (mine, grant["token"][:-2] + "xx"), (mine, "garbage")]:
        refused = http_local.get(f"/v1/traces/{request_id}", params={"share": token}, headers=stranger)
        assert refused.status_code == 403
        assert refused.json()["error"]["type"] == "permission_error"
        assert refused.json()["error"]["code"] == "invalid_share_token"


def test_only_the_owning_tenant_may_share_a_trace(http_local: httpx.Client) -> None:
    mine = request_as(http_local, "acme")
    assert http_local.post(f"/v1/traces/{mine}/share", headers={"X-Test-Tenant": "globex"}).status_code == 404


def test_the_listing_shows_a_tenant_only_its_own_requests(http_local: httpx.Client) -> None:
    acme, globex, anonymous = (
        request_as(http_local, "acme"),
        request_as(http_local, "globex"),
        request_as(http_local, None),
    )

    def listed(tenant: str | None) -> set[str]:
        headers = {"X-Test-Tenant": tenant} if tenant else {}
        return {item["id"] for item in http_local.get("/v1/traces", headers=headers).json()["data"]}

    assert acme in listed("acme") and not {globex, anonymous} & listed("acme")
    assert globex in listed("globex") and acme not in listed("globex")
    assert {acme, globex, anonymous} <= listed(None)  # no tenant: the development server shows all


def test_tokens_expire_and_are_bound_to_the_secret() -> None:
    links = ShareLinks(b"k" * 32, ttl_s=60)
    grant = links.issue("req-1", now=1000)
    assert links.verify("req-1", grant.token, now=1059)
    assert not links.verify("req-1", grant.token, now=1061)
    assert not links.verify("req-2", grant.token, now=1000)
    assert not ShareLinks(b"j" * 32, ttl_s=60).verify("req-1", grant.token, now=1000)
    forged = f"{grant.expires_at + 10_000}.{grant.token.split('.', 1)[1]}"  # a later expiry, same signature
    assert not links.verify("req-1", forged, now=1000)


def test_sharing_is_off_outside_development_without_a_secret() -> None:
    assert share_links_from_settings(None, ttl_s=60, dev_mode=False) is None
    assert share_links_from_settings(None, ttl_s=60, dev_mode=True) is not None
    assert share_links_from_settings("s" * 32, ttl_s=60, dev_mode=False) is not None
