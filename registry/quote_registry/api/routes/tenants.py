"""/v1/tenants (admin) and /v1/audit."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from quote_registry.api.deps import CallerDep, IdCursor, SessionDep
from quote_registry.api.schemas import TenantCreate, tenant_out
from quote_registry.services import audit, tenants

router = APIRouter(tags=["tenants"])


@router.post("/v1/tenants", status_code=201)
def create_tenant(body: TenantCreate, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    caller.require("admin")
    return tenant_out(tenants.create_tenant(session, name=body.name, actor=caller.key_prefix))


@router.get("/v1/tenants")
def list_tenants(session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    caller.require("admin")
    return {"object": "list", "data": [tenant_out(t) for t in tenants.list_tenants(session)]}


@router.get("/v1/audit")
def list_audit(
    session: SessionDep,
    caller: CallerDep,
    after: IdCursor = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    scope = None if caller.is_admin else caller.tenant_id
    rows = audit.events(session, tenant_id=scope, after=after, limit=max(1, min(limit, 500)))
    data = [
        {
            "id": e.id,
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "detail": e.detail,
            "created_at": e.created_at.isoformat(),
        }
        for e in rows
    ]
    return {"object": "list", "data": data, "next_cursor": data[-1]["id"] if data else None}
