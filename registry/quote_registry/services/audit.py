"""The audit log: every change is recorded in the same transaction as the change itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quote_registry.models import AuditEvent


def record(session: Session, *, tenant_id: int | None, actor: str, action: str, target: str, **detail: Any) -> None:
    session.add(AuditEvent(tenant_id=tenant_id, actor=actor, action=action, target=target, detail=detail))


def events(session: Session, *, tenant_id: int | None, after: int = 0, limit: int = 100) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.id > after).order_by(AuditEvent.id).limit(limit)
    if tenant_id is not None:
        query = query.where(AuditEvent.tenant_id == tenant_id)
    return list(session.scalars(query))
