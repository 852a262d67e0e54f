"""Recent traces that went wrong: mod errors and erasures, per mod, for the "Recent errors" dashboard.

    tenant key ──────────── GET /v1/traces/recent-errors ──► its own tenant's traces
    service key (operator) ─ (?tenant=…)                 ──► the tenants it acts for (`*`: all)
    admin key ──────────────                             ──► every tenant, or the one named
    Grafana (Infinity JSON data source) reads `data` (one row per trace) and `by_mod` (counts per mod).

Why a JSON endpoint and not PostgreSQL as a Grafana data source: the scoping above is the same
rule every other trace read follows, enforced here by the key Grafana holds; a database data source
would see every tenant's rows and every other table (key hashes, bundles) unless a restricted role
and row-level security mirrored that rule by hand. The endpoint also keeps dashboards off the
schema (a migration cannot break them), works on SQLite in the embedded default, and reaches
tenants through the gateway with their own keys, where a database never would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import Session

from quote_registry.errors import Invalid, NotFound
from quote_registry.models import Tenant, TraceRecord
from quote_registry.services.auth import Principal

__all__ = ["DEFAULT_WINDOW", "MAX_ROWS", "ErrorFilter", "ModProblems", "RecentProblem", "by_mod", "recent"]

MAX_ROWS = 500
DEFAULT_WINDOW = timedelta(hours=24)
Kind = Literal["error", "erasure"]


@dataclass(frozen=True, slots=True)
class ErrorFilter:
    """What the dashboard narrows by; None means any (since: the last `DEFAULT_WINDOW`)."""

    tenant: str | None = None
    mod: str | None = None
    model: str | None = None
    kind: Kind | None = None  # error: failed requests; erasure: backtracked tokens; None: either
    since: datetime | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class RecentProblem:
    """One trace with an error or erasures; `id` opens it at /timeline?trace=<id>."""

    id: str
    created: datetime
    tenant: str
    model: str
    mod: str | None
    finish_reason: str | None
    error: bool
    erasures: int
    replica: str | None


@dataclass(frozen=True, slots=True)
class ModProblems:
    """Per (tenant, mod) over the rows returned: how many failed, how many erased, the newest trace."""

    tenant: str
    mod: str | None
    errors: int
    with_erasures: int
    erased_tokens: int
    latest_id: str
    latest: datetime


def recent(session: Session, *, principal: Principal, filters: ErrorFilter) -> list[RecentProblem]:
    """Newest first, only tenants the caller may read (another's name is the same 404 as a missing one)."""
    if not 1 <= filters.limit <= MAX_ROWS:
        raise Invalid(f"limit must be between 1 and {MAX_ROWS}", param="limit")
    for name in ("tenant", "mod", "model"):
        if "\x00" in (getattr(filters, name) or ""):
            raise Invalid("filters must not contain NUL characters", param=name)
    query = _scoped(principal, filters.tenant)
    query = query.where(_problem(filters.kind))
    since = filters.since or datetime.now(timezone.utc) - DEFAULT_WINDOW
    query = query.where(TraceRecord.created_at >= since)
    for column, value in ((TraceRecord.mod, filters.mod), (TraceRecord.model, filters.model)):
        if value is not None:
            query = query.where(column == value)
    rows = session.execute(query.order_by(TraceRecord.id.desc()).limit(filters.limit))
    return [_problem_out(row, tenant) for row, tenant in rows]


def by_mod(problems: list[RecentProblem]) -> list[ModProblems]:
    """Fold rows (newest first) into one line per (tenant, mod), the mods with most errors first."""
    groups: dict[tuple[str, str | None], list[RecentProblem]] = {}
    for item in problems:
        groups.setdefault((item.tenant, item.mod), []).append(item)
    lines = [
        ModProblems(
            tenant,
            mod,
            errors=sum(p.error for p in items),
            with_erasures=sum(p.erasures > 0 for p in items),
            erased_tokens=sum(p.erasures for p in items),
            latest_id=items[0].id,
            latest=items[0].created,
        )
        for (tenant, mod), items in groups.items()
    ]
    return sorted(lines, key=lambda line: (-line.errors, -line.with_erasures, line.tenant, line.mod or ""))


def _scoped(principal: Principal, tenant: str | None) -> Select[TraceRecord, str]:
    query = select(TraceRecord, Tenant.name).join(Tenant, Tenant.id == TraceRecord.tenant_id)
    readable = _readable_tenants(principal)
    if tenant is not None and readable is not None and tenant not in readable:
        raise NotFound(f"no tenant named {tenant!r}", param="tenant")
    if tenant is not None:
        return query.where(Tenant.name == tenant)
    return query if readable is None else query.where(Tenant.name.in_(readable))


def _readable_tenants(principal: Principal) -> frozenset[str] | None:
    """Tenant names the caller may list (None: all): admins any, service keys those they act for."""
    if principal.is_admin or ("service" in principal.scopes and "*" in principal.acts_for):
        return None
    if "service" in principal.scopes:
        return principal.acts_for | {principal.tenant}
    return frozenset({principal.tenant})


def _problem(kind: Kind | None) -> ColumnElement[bool]:
    failed, erased = TraceRecord.error.is_(True), TraceRecord.erasures > 0
    if kind == "error":
        return failed
    if kind == "erasure":
        return erased
    return or_(failed, erased)


def _problem_out(row: TraceRecord, tenant: str) -> RecentProblem:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=timezone.utc)
    return RecentProblem(
        row.request_id,
        created,
        tenant,
        row.model,
        row.mod or None,
        row.finish_reason or None,
        row.error,
        row.erasures,
        row.replica or None,
    )
