"""Trace records: finished request traces shipped by replicas, read by the tenant that made them.

    replica ── POST /v1/traces/ingest {records} ──► ingest()   (service keys; idempotent by request_id)
    tenant  ── GET  /v1/traces?filters&after= ────► page()     (own tenant only; admins any)
    tenant  ── GET  /v1/traces/{id} ──────────────► get()      (another tenant's trace: NotFound, like a missing one)
    retention job ────────────────────────────────► prune()    (by age and by count per tenant)

The tenant of a record is the one the gateway signed for the request (replicas only know it from
that header), so ingest is reserved to platform `service` keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import CursorResult, Delete, delete, func, select
from sqlalchemy.orm import Session, undefer

from quote_registry.db import insert_skipping_duplicates
from quote_registry.errors import Invalid, NotFound
from quote_registry.models import Tenant, TraceRecord
from quote_registry.services.auth import Principal

__all__ = ["MAX_BATCH", "MAX_PAGE", "Ingested", "TraceFilter", "get", "get_shared", "ingest", "page", "prune"]

MAX_BATCH = 500
MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class Ingested:
    accepted: int
    duplicates: int
    unknown_tenants: int


@dataclass(frozen=True, slots=True)
class TraceFilter:
    """What `GET /v1/traces` narrows by; None means any."""

    mod: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    error: bool | None = None
    since: datetime | None = None
    until: datetime | None = None


def ingest(session: Session, *, principal: Principal, records: list[dict[str, Any]]) -> Ingested:
    """Store new traces; ids already stored are duplicates, traces of unknown tenants are counted and dropped."""
    principal.require("service")
    if len(records) > MAX_BATCH:
        raise Invalid(f"at most {MAX_BATCH} traces per batch", param="records")
    names = {r["tenant"] for r in records}
    rows = session.execute(select(Tenant.name, Tenant.id).where(Tenant.name.in_(names)))
    tenants: dict[str, int] = {name: tenant_id for name, tenant_id in rows}
    ids = [r["request_id"] for r in records]
    seen = set(session.scalars(select(TraceRecord.request_id).where(TraceRecord.request_id.in_(ids))))
    fresh: list[TraceRecord] = []
    unknown = 0
    for item in records:
        if item["request_id"] in seen:
            continue
        if item["tenant"] not in tenants:
            unknown += 1
            continue
        seen.add(item["request_id"])
        fresh.append(_row(item, tenants[item["tenant"]]))
    return Ingested(_insert(session, fresh), len(records) - len(fresh) - unknown, unknown)


def _row(item: dict[str, Any], tenant_id: int) -> TraceRecord:
    created = datetime.fromtimestamp(item["created"], tz=timezone.utc)
    keep = ("request_id", "model", "mod", "finish_reason", "error", "erasures", "replica", "body")
    return TraceRecord(tenant_id=tenant_id, created_at=created, **{k: item[k] for k in keep})


def _insert(session: Session, rows: list[TraceRecord]) -> int:
    columns = [c.key for c in TraceRecord.__table__.columns if c.key != "id"]
    return insert_skipping_duplicates(session, rows, columns)  # another replica may race us on an id


def _tenant_scope(session: Session, principal: Principal, tenant: str | None) -> int:
    if tenant is None or not principal.is_admin:
        return principal.tenant_id
    found = session.scalar(select(Tenant.id).where(Tenant.name == tenant))
    if found is None:
        raise NotFound(f"no tenant named '{tenant}'", param="tenant")
    return found


def page(
    session: Session,
    *,
    principal: Principal,
    filters: TraceFilter,
    after: int | None = None,
    limit: int = 50,
    tenant: str | None = None,
) -> tuple[list[TraceRecord], int | None]:
    """Newest first; returns the page and the cursor of the next one (None at the end)."""
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit must be between 1 and {MAX_PAGE}", param="limit")
    for name in ("mod", "model", "finish_reason"):
        if "\x00" in (getattr(filters, name) or ""):
            raise Invalid("filters must not contain NUL characters", param=name)
    query = select(TraceRecord).where(TraceRecord.tenant_id == _tenant_scope(session, principal, tenant))
    for column, value in (
        (TraceRecord.mod, filters.mod),
        (TraceRecord.model, filters.model),
        (TraceRecord.finish_reason, filters.finish_reason),
        (TraceRecord.error, filters.error),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.since is not None:
        query = query.where(TraceRecord.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(TraceRecord.created_at < filters.until)
    if after is not None:
        query = query.where(TraceRecord.id < after)
    rows = list(session.scalars(query.order_by(TraceRecord.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more else None)


def get(session: Session, *, principal: Principal, request_id: str) -> TraceRecord:
    """The trace if the caller's tenant made it (admins: any); otherwise NotFound, whether it exists or not."""
    if "\x00" in request_id:
        raise NotFound("no such trace", param="id")
    query = select(TraceRecord).options(undefer(TraceRecord.body)).where(TraceRecord.request_id == request_id)
    if not principal.is_admin:
        query = query.where(TraceRecord.tenant_id == principal.tenant_id)
    row = session.scalar(query)
    if row is None:
        raise NotFound(f"no trace '{request_id}'", param="id")
    return row


def get_shared(session: Session, *, request_id: str) -> TraceRecord:
    """The trace a verified share token names, whoever owns it (a token cannot name an id with NUL)."""
    query = select(TraceRecord).options(undefer(TraceRecord.body)).where(TraceRecord.request_id == request_id)
    row = session.scalar(query)
    if row is None:
        raise NotFound(f"no trace '{request_id}'", param="id")
    return row


def prune(session: Session, *, max_age: timedelta, max_per_tenant: int, now: datetime | None = None) -> int:
    """Delete traces older than max_age and, per tenant, all but the newest max_per_tenant; returns the count."""
    cutoff = (now or datetime.now(timezone.utc)) - max_age
    removed = _delete(session, delete(TraceRecord).where(TraceRecord.created_at < cutoff))
    crowded = session.scalars(
        select(TraceRecord.tenant_id).group_by(TraceRecord.tenant_id).having(func.count() > max_per_tenant)
    )
    for tenant_id in list(crowded):
        oldest_kept = session.scalar(
            select(TraceRecord.id)
            .where(TraceRecord.tenant_id == tenant_id)
            .order_by(TraceRecord.id.desc())
            .offset(max_per_tenant - 1)
            .limit(1)
        )
        if oldest_kept is not None:
            stale = delete(TraceRecord).where(TraceRecord.tenant_id == tenant_id, TraceRecord.id < oldest_kept)
            removed += _delete(session, stale)
    return removed


def _delete(session: Session, statement: Delete) -> int:
    result = session.execute(statement)
    return int(result.rowcount or 0) if isinstance(result, CursorResult) else 0
