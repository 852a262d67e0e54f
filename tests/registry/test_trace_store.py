"""The trace store: replicas ship traces with a service key, tenants read only their own, retention."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import uvicorn

from quote_mod_sdk.generation import ModCall, RequestTrace, TokenRecord
from quote_registry.api.app import create_registry_app
from quote_registry.db import make_engine, make_sessionmaker, transaction
from quote_registry.services import traces
from quote_serving.observability.trace_shipper import TraceShipper
from quote_serving.runtime.traces import StoredTrace
from tests.ports import free_port
from tests.registry.conftest import RunningRegistry


class _Chars:
    """A tokenizer whose token ids are character codes (the shipper only decodes)."""

    def decode(self, tokens: list[int]) -> str:
        return "".join(chr(t) for t in tokens)


def _stored(request_id: str, tenant: str | None, *, mod: str = "m", error: str | None = None) -> StoredTrace:
    trace = RequestTrace(
        request_id,
        mod,
        prompt_tokens=[72, 105],
        tokens=[TokenRecord(0, 65, False), TokenRecord(1, 66, True, erased=True), TokenRecord(2, 67, False)],
        mod_calls=[ModCall(1, "ForwardPass", "backtrack", 0.1, {"n": 1})],
        finish_reason="stop" if error is None else "error",
        error=error,
    )
    return StoredTrace(trace, "tiny", tenant, time.time())


def _service_key(registry: RunningRegistry) -> str:
    with registry.client() as admin:
        admin.post("/v1/tenants", json={"name": "platform"})
        made = admin.post("/v1/keys", json={"tenant": "platform", "scopes": ["service"], "name": "replica"})
        assert made.status_code == 201, made.text
    return str(made.json()["key"])


def _ship(registry: RunningRegistry, items: list[StoredTrace], replica: str = "r1") -> TraceShipper:
    shipper = TraceShipper(registry.url, _service_key(registry), _Chars(), replica=replica, batch=3)
    for item in items:
        shipper.offer(item)
    assert shipper.flush()
    return shipper


def test_tenant_lists_and_opens_own_traces_and_others_get_404(registry: RunningRegistry) -> None:
    acme, globex = registry.tenant_with_keys("acme"), registry.tenant_with_keys("globex")
    items = [_stored(f"chatcmpl-a{i}", "acme", mod="ban" if i % 2 else "other") for i in range(7)]
    items += [_stored("chatcmpl-g0", "globex", error="mod crashed"), _stored("chatcmpl-none", None)]
    shipper = _ship(registry, items)
    assert (shipper.shipped, shipper.dropped, shipper.skipped) == (8, 0, 1)
    with registry.client(acme["key"]) as client:
        seen, after = [], None
        while True:
            page = client.get("/v1/traces", params={"limit": 3, **({"after": after} if after else {})}).json()
            seen += [t["id"] for t in page["data"]]
            if not page["has_more"]:
                break
            after = page["next_cursor"]
        assert seen == [f"chatcmpl-a{i}" for i in reversed(range(7))]
        banned = client.get("/v1/traces", params={"mod": "ban"}).json()["data"]
        assert {t["id"] for t in banned} == {"chatcmpl-a1", "chatcmpl-a3", "chatcmpl-a5"}
        assert banned[0]["erasures"] == 1 and banned[0]["replica"] == "r1"
        full = client.get("/v1/traces/chatcmpl-a3").json()
        assert full["prompt"]["text"] == "Hi" and [t["erased"] for t in full["tokens"]] == [False, True, False]
        assert full["mod_calls"][0]["action"] == "backtrack"
        other, missing = client.get("/v1/traces/chatcmpl-g0"), client.get("/v1/traces/chatcmpl-nope")
        assert other.status_code == missing.status_code == 404
        assert other.json()["error"]["type"] == missing.json()["error"]["type"]
        assert client.get("/v1/traces", params={"tenant": "globex"}).json()["data"][0]["id"].startswith("chatcmpl-a")
        assert client.get("/v1/traces", params={"error": "true"}).json()["data"] == []
    with registry.client(globex["key"]) as client:
        errors = client.get("/v1/traces", params={"error": "true"}).json()["data"]
        assert [t["id"] for t in errors] == ["chatcmpl-g0"]
        assert client.get("/v1/traces/chatcmpl-a0").status_code == 404
    shipper.close()


def test_only_service_keys_ingest_and_bad_input_is_a_4xx(registry: RunningRegistry) -> None:
    acme = registry.tenant_with_keys("acme")
    record = {"request_id": "x", "tenant": "acme", "model": "tiny", "created": 1.0, "body": {}}
    with registry.client(acme["key"]) as client:
        refused = client.post("/v1/traces/ingest", json={"records": [record]})
        assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
        for params in ({"limit": 0}, {"limit": 10_000}, {"after": -1}, {"after": 2**70}, {"since": "yesterday"}):
            answer = client.get("/v1/traces", params=params)
            assert answer.status_code in (400, 422) and "error" in answer.json(), params
        assert client.get("/v1/traces/" + "x" * 5000).status_code == 404
    with registry.client(_service_key(registry)) as service:
        for bad in ({**record, "created": -5}, {**record, "extra": 1}, {**record, "request_id": "y" * 500}):
            answer = service.post("/v1/traces/ingest", json={"records": [bad]})
            assert 400 <= answer.status_code < 500 and "error" in answer.json()
        too_many = service.post("/v1/traces/ingest", json={"records": [record] * 501})
        assert 400 <= too_many.status_code < 500
        first = service.post(
            "/v1/traces/ingest", json={"records": [record, {**record, "request_id": "z", "tenant": "nobody"}]}
        ).json()
        assert (first["accepted"], first["unknown_tenants"]) == (1, 1)
        again = service.post("/v1/traces/ingest", json={"records": [record]}).json()
        assert (again["accepted"], again["duplicates"]) == (0, 1)


def test_retention_by_age_and_count_per_tenant(registry: RunningRegistry) -> None:
    registry.tenant_with_keys("acme")
    registry.tenant_with_keys("globex")
    old = _stored("old", "acme")
    old.created -= 10 * 86400
    _ship(registry, [old] + [_stored(f"a{i}", "acme") for i in range(5)] + [_stored("g", "globex")]).close()
    sessions = make_sessionmaker(make_engine(registry.settings.database_url))
    with transaction(sessions) as session:
        removed = traces.prune(session, max_age=timedelta(days=7), max_per_tenant=3, now=datetime.now(timezone.utc))
    assert removed == 3  # the old one by age, a0 and a1 by count
    with registry.client() as admin:
        left = [t["id"] for t in admin.get("/v1/traces", params={"tenant": "acme"}).json()["data"]]
        assert left == ["a4", "a3", "a2"]
        assert [t["id"] for t in admin.get("/v1/traces", params={"tenant": "globex"}).json()["data"]] == ["g"]


def _serve(app: Any, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return server, thread


def test_store_outage_drops_and_counts_then_shipping_resumes(registry: RunningRegistry) -> None:
    registry.tenant_with_keys("acme")
    port = free_port()
    server, thread = _serve(create_registry_app(registry.settings), port)
    shipper = TraceShipper(f"http://127.0.0.1:{port}", _service_key(registry), _Chars(), batch=2, timeout_s=2)
    shipper.offer(_stored("before", "acme"))
    assert shipper.flush() and shipper.shipped == 1
    server.should_exit = True
    thread.join(timeout=10)
    for i in range(4):
        shipper.offer(_stored(f"during{i}", "acme"))  # returns at once whether or not the store is up
    assert shipper.flush() and (shipper.shipped, shipper.dropped) == (1, 4)
    server, thread = _serve(create_registry_app(registry.settings), port)
    shipper.offer(_stored("after", "acme"))
    assert shipper.flush() and (shipper.shipped, shipper.dropped) == (2, 4)
    with registry.client() as admin:
        ids = [t["id"] for t in admin.get("/v1/traces", params={"tenant": "acme"}).json()["data"]]
    assert ids == ["after", "before"]
    shipper.close()
    server.should_exit = True
    thread.join(timeout=10)


def test_a_full_queue_drops_instead_of_blocking() -> None:
    port = free_port()  # nothing listens: every batch fails, slowly enough for the queue to fill
    shipper = TraceShipper(f"http://127.0.0.1:{port}", "qk_x_y", _Chars(), capacity=2, batch=1)
    for i in range(50):
        shipper.offer(_stored(f"t{i}", "acme"))
    assert shipper.flush()
    assert shipper.shipped == 0 and shipper.dropped == 50
    shipper.close()
    httpx.Client().close()


def test_the_retention_job_runs_in_the_registry(registry: RunningRegistry) -> None:
    registry.tenant_with_keys("acme")
    _ship(registry, [_stored(f"a{i}", "acme") for i in range(4)]).close()
    settings = registry.settings.model_copy(update={"trace_prune_interval_s": 0.1, "trace_max_per_tenant": 2})
    server, thread = _serve(create_registry_app(settings), free_port())
    try:
        with registry.client() as admin:
            deadline = time.monotonic() + 30
            left: list[str] = []
            while time.monotonic() < deadline:
                left = [t["id"] for t in admin.get("/v1/traces", params={"tenant": "acme"}).json()["data"]]
                if len(left) == 2:
                    break
                time.sleep(0.1)
            assert left == ["a3", "a2"]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_nul_characters_are_a_4xx_on_postgresql_too(registry: RunningRegistry) -> None:
    acme = registry.tenant_with_keys("acme")
    with registry.client(_service_key(registry)) as service:
        record = {"request_id": "a\x00b", "tenant": "acme", "model": "tiny", "created": 1.0, "body": {}}
        assert service.post("/v1/traces/ingest", json={"records": [record]}).status_code == 400
    with registry.client(acme["key"]) as client:
        assert client.get("/v1/traces", params={"mod": "a\x00"}).status_code == 400
        assert client.get("/v1/traces/a%00b").status_code == 404
