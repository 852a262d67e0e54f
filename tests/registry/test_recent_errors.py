"""GET /v1/traces/recent-errors: traces with errors or erasures, per mod, for the Grafana dashboard;
a tenant sees only its own, a service key the tenants it acts for, an admin every tenant."""

from __future__ import annotations

import time
from typing import Any

from quote_serving.observability.dashboards import json_queries
from tests.registry.conftest import RunningRegistry
from tests.registry.test_trace_store import _service_key, _ship, _stored


def _unerased(request_id: str, tenant: str, mod: str = "m", error: str | None = None) -> Any:
    """A trace without erasures (and without an error unless given)."""
    stored = _stored(request_id, tenant, mod=mod, error=error)
    for token in stored.trace.tokens:
        token.erased = False
    return stored


def _seed(registry: RunningRegistry) -> dict[str, str]:
    keys = {name: registry.tenant_with_keys(name)["key"] for name in ("acme", "globex")}
    old = _stored("acme-old", "acme", mod="ban")
    old.created -= 3 * 86400
    items = [
        old,
        _stored("acme-erased", "acme", mod="ban"),  # one erased token
        _stored("acme-failed", "acme", mod="ban", error="mod crashed"),
        _unerased("acme-other", "acme", mod="other", error="timeout"),
        _unerased("acme-clean", "acme"),
        _stored("globex-failed", "globex", mod="ban", error="mod crashed"),
    ]
    _ship(registry, items).close()
    return keys


def _ids(answer: Any) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [row["id"] for row in answer.json()["data"]]


def test_a_tenant_sees_only_its_own_recent_errors_and_erasures(registry: RunningRegistry) -> None:
    keys = _seed(registry)
    with registry.client(keys["acme"]) as acme, registry.client(keys["globex"]) as globex:
        found = acme.get("/v1/traces/recent-errors")
        assert _ids(found) == ["acme-other", "acme-failed", "acme-erased"]  # newest first; old and clean left out
        row = found.json()["data"][1]
        assert row["tenant"] == "acme" and row["mod"] == "ban" and row["error"] is True and row["erasures"] == 1
        assert row["timeline"] == "/timeline?trace=acme-failed" and row["time"].startswith(time.strftime("%Y-"))
        per_mod = {m["mod"]: m for m in found.json()["by_mod"]}
        assert (per_mod["ban"]["errors"], per_mod["ban"]["with_erasures"], per_mod["ban"]["latest_id"]) == (
            1,
            2,
            "acme-failed",
        )
        assert per_mod["other"]["errors"] == 1 and list(per_mod) == ["ban", "other"]
        assert _ids(acme.get("/v1/traces/recent-errors", params={"kind": "erasure"})) == ["acme-failed", "acme-erased"]
        assert _ids(acme.get("/v1/traces/recent-errors", params={"kind": "error", "mod": "ban"})) == ["acme-failed"]
        assert "acme-old" in _ids(acme.get("/v1/traces/recent-errors", params={"since": "2000-01-01T00:00:00Z"}))

        assert _ids(globex.get("/v1/traces/recent-errors")) == ["globex-failed"]
        theirs = globex.get("/v1/traces/recent-errors", params={"tenant": "acme"})
        missing = globex.get("/v1/traces/recent-errors", params={"tenant": "nobody"})
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json()["error"]["type"] == missing.json()["error"]["type"]


def test_operators_read_across_tenants_with_an_admin_or_a_service_key(registry: RunningRegistry) -> None:
    _seed(registry)
    with registry.client() as admin:
        assert set(_ids(admin.get("/v1/traces/recent-errors"))) == {
            "acme-other",
            "acme-failed",
            "acme-erased",
            "globex-failed",
        }
        assert _ids(admin.get("/v1/traces/recent-errors", params={"tenant": "globex"})) == ["globex-failed"]
        made = admin.post(
            "/v1/keys", json={"tenant": "platform", "scopes": ["service"], "name": "grafana", "acts_for": ["globex"]}
        )
        assert made.status_code == 201, made.text
        everyone = admin.post(
            "/v1/keys", json={"tenant": "platform", "scopes": ["service"], "name": "ops", "acts_for": ["*"]}
        )
    with registry.client(made.json()["key"]) as grafana, registry.client(everyone.json()["key"]) as ops:
        assert _ids(grafana.get("/v1/traces/recent-errors")) == ["globex-failed"]
        assert grafana.get("/v1/traces/recent-errors", params={"tenant": "acme"}).status_code == 404
        assert len(_ids(ops.get("/v1/traces/recent-errors"))) == 4


def test_bad_filters_are_a_4xx(registry: RunningRegistry) -> None:
    keys = _seed(registry)
    with registry.client(keys["acme"]) as acme:
        for params in ({"limit": 0}, {"limit": 501}, {"kind": "weird"}, {"since": "yesterday"}, {"mod": "a\x00"}):
            answer = acme.get("/v1/traces/recent-errors", params=params)
            assert answer.status_code in (400, 422) and "error" in answer.json(), params
    with registry.client(None) as anonymous:
        assert anonymous.get("/v1/traces/recent-errors").status_code == 401
    with registry.client(_service_key(registry)) as service:  # acts for nobody: its own tenant only
        assert _ids(service.get("/v1/traces/recent-errors")) == []


def test_the_recent_errors_dashboard_queries_find_their_columns(registry: RunningRegistry) -> None:
    keys = _seed(registry)
    queries = list(json_queries())
    assert len(queries) == 2
    with registry.client(keys["acme"]) as acme:
        for _, title, target in queries:
            grafana = {"${__from:date:iso}": "2000-01-01T00:00:00.000Z"}  # as Grafana fills it in
            params = {p["key"]: grafana.get(p["value"], p["value"]) for p in target["url_options"]["params"]}
            answer = acme.get(target["url"], params=params)
            assert answer.status_code == 200, (title, answer.text)
            rows = answer.json()[target["root_selector"]]
            assert rows, title
            for column in target["columns"]:
                assert all(column["selector"] in row for row in rows), (title, column)
