"""Routes for platform services (service-scoped keys): key introspection and usage records.

    gateway ── POST /v1/auth/introspect {key} ──► active: tenant, scopes, limits | inactive: reason
    gateway ── POST /v1/usage {records} ────────► stored in batches, idempotent by request_id
    anyone  ── GET  /v1/usage ──────────────────► totals by tenant, key, model, mod (own tenant unless admin)
                   ?group_by=day                    … and by UTC day (`day`: YYYY-MM-DD; null otherwise)

Introspection answers 200 for any key it was asked about: `active: false` says the key is
unknown, revoked or expired, so a 401 here always means the *caller's* key is wrong.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter

from quote_registry.api.deps import CallerDep, SessionDep
from quote_registry.api.schemas import IntrospectBody, UsageBatch, introspection_out
from quote_registry.errors import Unauthorized
from quote_registry.services import auth, usage

router = APIRouter(tags=["gateway"])


@router.post("/v1/auth/introspect")
def introspect(body: IntrospectBody, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    caller.require("service")
    try:
        key = auth.authenticated_key(session, body.key)
    except Unauthorized as exc:
        return {"object": "introspection", "active": False, "reason": exc.message}
    token = auth.usage_token(auth.service_key_row(session, caller), key.prefix)
    return {**introspection_out(key), "usage_token": token}


@router.post("/v1/usage")
def record_usage(body: UsageBatch, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    done = usage.record(session, principal=caller, records=[r.model_dump() for r in body.records])
    return {"object": "usage.batch", **asdict(done)}


@router.get("/v1/usage")
def usage_totals(
    session: SessionDep,
    caller: CallerDep,
    tenant: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    group_by: Literal["day"] | None = None,
) -> dict[str, Any]:
    per_day = group_by == "day"
    rows = usage.totals(session, principal=caller, tenant=tenant, since=since, until=until, per_day=per_day)
    return {"object": "list", "data": [{"object": "usage.total", **asdict(row)} for row in rows]}
