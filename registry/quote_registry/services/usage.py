"""Usage records: what each request cost, written in batches by gateways and summed for billing.

    gateway ── POST /v1/usage {records} ──► record()  (service keys; idempotent by request_id)
    tenant/admin ── GET /v1/usage ────────► totals()  (a tenant sees its own; admins any)
                    ?group_by=day                    (and per UTC day, for daily bills and charts)

A record names its API key by prefix; the tenant is taken from the key row, never from the
gateway's say-so, so a record cannot be charged to another tenant. A batch retried after a
timeout is harmless: request ids already stored are counted as duplicates and skipped.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, null, select
from sqlalchemy.orm import Session

from quote_registry.db import insert_skipping_duplicates
from quote_registry.errors import Invalid
from quote_registry.models import ApiKey, Tenant, UsageRecord
from quote_registry.services import auth
from quote_registry.services.auth import Principal, usage_token

__all__ = ["MAX_BATCH", "Recorded", "UsageTotal", "record", "totals"]

MAX_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Recorded:
    accepted: int
    duplicates: int
    unknown_keys: int


@dataclass(frozen=True, slots=True)
class UsageTotal:
    tenant: str
    key_prefix: str
    model: str
    mod: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    day: str | None = None  # YYYY-MM-DD (UTC) when grouped by day


def record(session: Session, *, principal: Principal, records: list[dict[str, Any]]) -> Recorded:
    """Store new records (skipping known request ids); records of unknown keys are counted, not stored."""
    principal.require("service")
    if len(records) > MAX_BATCH:
        raise Invalid(f"at most {MAX_BATCH} records per batch", param="records")
    # Only usage of keys this service key was shown (introspected): a forged prefix has no valid token,
    # and is counted with the unknown keys, never stored.
    service = auth.service_key_row(session, principal)
    vouched = [r for r in records if _vouched(service, r)]
    forged = len(records) - len(vouched)
    tenants = _tenants_by_prefix(session, {r["key_prefix"] for r in vouched})
    seen = _known_ids(session, [r["request_id"] for r in records])
    fresh, unknown = [], 0
    for item in vouched:
        if item["request_id"] in seen:
            continue
        if item["key_prefix"] not in tenants:
            unknown += 1
            continue
        seen.add(item["request_id"])
        fresh.append(UsageRecord(tenant_id=tenants[item["key_prefix"]], **_columns(item)))
    return Recorded(_insert(session, fresh), len(vouched) - len(fresh) - unknown, unknown + forged)


def _vouched(service: ApiKey, record: dict[str, Any]) -> bool:
    given = str(record.get("usage_token", "")).encode("utf-8", "surrogatepass")
    return hmac.compare_digest(given, usage_token(service, str(record["key_prefix"])).encode())


def _columns(item: dict[str, Any]) -> dict[str, Any]:
    keep = ("request_id", "key_prefix", "model", "mod", "mod_ref", "prompt_tokens", "completion_tokens", "streamed")
    return {k: item[k] for k in keep if k in item}


def _tenants_by_prefix(session: Session, prefixes: set[str]) -> dict[str, int]:
    rows = session.execute(select(ApiKey.prefix, ApiKey.tenant_id).where(ApiKey.prefix.in_(prefixes)))
    return {prefix: tenant_id for prefix, tenant_id in rows}


def _known_ids(session: Session, request_ids: list[str]) -> set[str]:
    found = session.scalars(select(UsageRecord.request_id).where(UsageRecord.request_id.in_(request_ids)))
    return set(found)


def _insert(session: Session, rows: list[UsageRecord]) -> int:
    return insert_skipping_duplicates(session, rows, _COLUMNS)  # another gateway may race us on an id


_COLUMNS = (
    "request_id",
    "tenant_id",
    "key_prefix",
    "model",
    "mod",
    "mod_ref",
    "prompt_tokens",
    "completion_tokens",
    "streamed",
)


def totals(
    session: Session,
    *,
    principal: Principal,
    tenant: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    per_day: bool = False,
) -> list[UsageTotal]:
    """Sums by (tenant, key, model, mod[, UTC day]); a non-admin caller only ever sees its own tenant."""
    if not principal.is_admin:
        tenant = principal.tenant
    day = _utc_day(session) if per_day else null()
    keys = (Tenant.name, UsageRecord.key_prefix, UsageRecord.model, UsageRecord.mod)
    grouping = (*keys, day) if per_day else keys
    query = (
        select(
            *keys,
            day,
            func.count(UsageRecord.id),
            func.sum(UsageRecord.prompt_tokens),
            func.sum(UsageRecord.completion_tokens),
        )
        .join(Tenant, Tenant.id == UsageRecord.tenant_id)
        .group_by(*grouping)
        .order_by(*grouping)
    )
    if tenant is not None:
        query = query.where(Tenant.name == tenant)
    if since is not None:
        query = query.where(UsageRecord.created_at >= since)
    if until is not None:
        query = query.where(UsageRecord.created_at < until)
    rows = session.execute(query)
    return [UsageTotal(t, k, m, d, int(n), int(p or 0), int(c or 0), y) for t, k, m, d, y, n, p, c in rows]


def _utc_day(session: Session) -> ColumnElement[str]:
    """A record's UTC day as YYYY-MM-DD, whatever the database session's time zone."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", UsageRecord.created_at), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", UsageRecord.created_at)  # SQLite keeps the UTC wall time as text
