"""Routes of the trace store: replicas ingest finished traces, tenants read their own.

replica (service key) ── POST /v1/traces/ingest ──► stored, idempotent by request id
tenant / gateway      ── GET  /v1/traces ─────────► summaries, newest first, cursor `after`
tenant / gateway      ── GET  /v1/traces/{id} ────► the full trace; another tenant's is a 404
Grafana / gateway     ── GET  /v1/traces/recent-errors ► traces with errors or erasures, per mod
                         (services/trace_errors.py says who sees which tenants, and why JSON)
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from quote_registry.api.deps import CallerDep, SessionDep, StateDep, bearer_key
from quote_registry.api.trace_schemas import TraceBatch, recent_errors_out, trace_out, trace_summary
from quote_registry.errors import Forbidden
from quote_registry.services import trace_errors, traces
from quote_registry.services.auth import authenticate
from quote_registry.settings import RegistrySettings
from quote_serving.observability.share import ShareLinks

router = APIRouter(tags=["traces"])

_MAX_CURSOR = 2**63 - 1


@router.post("/v1/traces/ingest")
def ingest(body: TraceBatch, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    done = traces.ingest(session, principal=caller, records=[r.model_dump() for r in body.records])
    return {"object": "trace.batch", **asdict(done)}


@router.get("/v1/traces")
def list_traces(
    session: SessionDep,
    caller: CallerDep,
    mod: Annotated[str | None, Query(max_length=160)] = None,
    model: Annotated[str | None, Query(max_length=256)] = None,
    finish_reason: Annotated[str | None, Query(max_length=32)] = None,
    error: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: Annotated[int | None, Query(ge=1, le=_MAX_CURSOR)] = None,
    limit: Annotated[int, Query(ge=1, le=traces.MAX_PAGE)] = 50,
    tenant: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    filters = traces.TraceFilter(mod, model, finish_reason, error, since, until)
    rows, cursor = traces.page(session, principal=caller, filters=filters, after=after, limit=limit, tenant=tenant)
    return {
        "object": "list",
        "data": [trace_summary(r) for r in rows],
        "has_more": cursor is not None,
        "next_cursor": cursor,
    }


@router.get("/v1/traces/recent-errors")  # before /v1/traces/{request_id}, which would take the path
def recent_errors(
    session: SessionDep,
    caller: CallerDep,
    tenant: Annotated[str | None, Query(max_length=64)] = None,
    mod: Annotated[str | None, Query(max_length=160)] = None,
    model: Annotated[str | None, Query(max_length=256)] = None,
    kind: trace_errors.Kind | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=trace_errors.MAX_ROWS)] = 100,
) -> dict[str, Any]:
    filters = trace_errors.ErrorFilter(tenant, mod, model, kind, since, limit)
    rows = trace_errors.recent(session, principal=caller, filters=filters)
    return recent_errors_out(rows, trace_errors.by_mod(rows))


def _share_links(settings: RegistrySettings) -> ShareLinks:
    if settings.share_secret is None:
        raise Forbidden("trace sharing is off: set QUOTE_SHARE_SECRET (the replicas' secret) on the registry")
    return ShareLinks(settings.share_secret.get_secret_value().encode(), ttl_s=settings.share_ttl_s)


@router.get("/v1/traces/{request_id}")
def get_trace(
    request_id: str,
    session: SessionDep,
    state: StateDep,
    request: Request,
    share: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, Any]:
    """With `share`, no key is needed: the token names this one trace (a bad token is a 403, never a peek)."""
    if share is not None:
        if not _share_links(state.settings).verify(request_id, share):
            raise Forbidden("this share link is invalid or has expired; ask for a new one")
        return trace_out(traces.get_shared(session, request_id=request_id[:128]))
    caller = authenticate(session, bearer_key(request))
    return trace_out(traces.get(session, principal=caller, request_id=request_id[:128]))


@router.post("/v1/traces/{request_id}/share")
def share_trace(request_id: str, session: SessionDep, state: StateDep, caller: CallerDep) -> dict[str, Any]:
    traces.get(session, principal=caller, request_id=request_id[:128])  # another tenant's: 404 before anything
    grant = _share_links(state.settings).issue(request_id)
    return {"object": "trace.share", "id": request_id, "token": grant.token, "expires_at": grant.expires_at}
