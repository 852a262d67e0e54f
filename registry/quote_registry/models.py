"""Registry tables (SQLAlchemy 2.0 typed ORM). Names follow a convention so Alembic diffs stay stable."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


MAX_ID = 2**31 - 1  # ids are INTEGER columns: the largest id, and so the largest pagination cursor


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    """An API key: shown once, stored as sha256(secret), found by its public prefix."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(64))  # space-separated: infer publish admin
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Per-key limits the gateway enforces; NULL: the gateway's default (set by admins only).
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    tokens_per_minute: Mapped[int | None] = mapped_column(Integer)
    max_concurrent: Mapped[int | None] = mapped_column(Integer)
    # Service keys only: the tenants this key may act for (space-separated names, "*" = any). A
    # replica's key lists the tenants its routes serve, so a stolen replica key reads nobody else's mods.
    acts_for: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Service keys: signs the usage tokens this key's introspections hand out (never leaves the registry).
    usage_secret: Mapped[str] = mapped_column(String(64), default=lambda: secrets.token_hex(32), server_default="")

    tenant: Mapped[Tenant] = relationship(lazy="joined")


class SigningKey(Base):
    """A tenant's trusted Ed25519 public key (rotation = add a new one, revoke the old)."""

    __tablename__ = "signing_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "key_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_id: Mapped[str] = mapped_column(String(40))
    public_key: Mapped[str] = mapped_column(String(64))  # base64 of the raw 32 bytes
    name: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Mod(Base):
    __tablename__ = "mods"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    tenant: Mapped[Tenant] = relationship(lazy="joined")


class ModVersion(Base):
    """One immutable version: the canonical bundle, its digest and signature."""

    __tablename__ = "mod_versions"
    __table_args__ = (UniqueConstraint("mod_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mod_id: Mapped[int] = mapped_column(ForeignKey("mods.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(80), index=True)
    bundle: Mapped[str] = mapped_column(Text, deferred=True)  # canonical JSON; loaded only when resolved
    size: Mapped[int] = mapped_column(Integer)
    sdk_version: Mapped[str] = mapped_column(String(32), default="")
    signature: Mapped[str | None] = mapped_column(String(128))
    signer_key_id: Mapped[str | None] = mapped_column(String(40))
    published_by: Mapped[str] = mapped_column(String(64))  # API key prefix
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    yanked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    yank_reason: Mapped[str] = mapped_column(Text, default="")

    mod: Mapped[Mod] = relationship(lazy="joined")


class Alias(Base):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("mod_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mod_id: Mapped[int] = mapped_column(ForeignKey("mods.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("mod_versions.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    version: Mapped[ModVersion] = relationship(lazy="joined")


class AuditEvent(Base):
    """Every change, who made it (key prefix, never the key) and what it touched."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="SET NULL"), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)  # type: ignore[type-arg]  # JSON column: any object
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UsageRecord(Base):
    """Tokens one request used, written in batches by gateways; a retried batch is a no-op (`request_id`)."""

    __tablename__ = "usage_records"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_prefix: Mapped[str] = mapped_column(String(32), index=True)
    model: Mapped[str] = mapped_column(String(256))
    mod: Mapped[str] = mapped_column(String(160), default="")  # "" without a mod; "owner:name" for others' mods
    mod_ref: Mapped[str] = mapped_column(String(64), default="")  # the version or alias pinned, if any
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    streamed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class TraceRecord(Base):
    """One finished request's trace, shipped by a replica; the body is the trace JSON the timeline reads."""

    __tablename__ = "trace_records"
    __table_args__ = (Index("ix_trace_records_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(256))
    mod: Mapped[str] = mapped_column(String(160), default="")
    finish_reason: Mapped[str] = mapped_column(String(32), default="")
    error: Mapped[bool] = mapped_column(Boolean, default=False)
    erasures: Mapped[int] = mapped_column(Integer, default=0)
    replica: Mapped[str] = mapped_column(String(128), default="")
    body: Mapped[dict] = mapped_column(JSON, deferred=True)  # type: ignore[type-arg]  # JSON column: any object
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
