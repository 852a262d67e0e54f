"""Tenants, and the bootstrap of the first admin."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from quote_mod_sdk.names import TENANT
from quote_registry.errors import Conflict, Invalid, NotFound
from quote_registry.models import ApiKey, Tenant
from quote_registry.services import audit, auth

NAME = re.compile(rf"^{TENANT.pattern}$")  # the one tenant grammar (quote_mod_sdk.names)
ADMIN_TENANT = "admin"


def create_tenant(session: Session, *, name: str, actor: str) -> Tenant:
    if not NAME.match(name):
        raise Invalid("tenant names are 1-63 lowercase letters, digits or '-'", param="name")
    tenant = Tenant(name=name)
    session.add(tenant)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"tenant {name!r} already exists", param="name") from exc
    audit.record(session, tenant_id=tenant.id, actor=actor, action="tenant.create", target=name)
    return tenant


def get_tenant(session: Session, *, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        raise NotFound(f"no tenant named {name!r}", param="tenant")
    return tenant


def list_tenants(session: Session) -> list[Tenant]:
    return list(session.scalars(select(Tenant).order_by(Tenant.id)))


def bootstrap_admin(session: Session, *, raw_key: str | None = None) -> str | None:
    """Create the admin tenant and its first admin key if no admin key exists; returns the key."""
    has_admin = session.scalar(select(ApiKey.id).where(ApiKey.scopes.contains("admin")).limit(1))
    if has_admin is not None:
        return None
    tenant = session.scalar(select(Tenant).where(Tenant.name == ADMIN_TENANT))
    tenant = tenant or create_tenant(session, name=ADMIN_TENANT, actor="bootstrap")
    _, raw = auth.create_key(session, tenant=tenant, scopes={"admin"}, name="bootstrap", actor="bootstrap", raw=raw_key)
    return raw
