"""Tenants' trusted Ed25519 public keys: add (rotation), revoke, and verify signatures with them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from quote_mod_sdk.errors import SignatureError
from quote_mod_sdk.signing import load_public_key, public_key_b64, public_key_id, verify_bundle
from quote_registry.errors import Conflict, Invalid, NotFound, SignatureRejected
from quote_registry.models import SigningKey
from quote_registry.services import audit
from quote_registry.services.auth import Principal


def add_key(session: Session, *, principal: Principal, public_key: str, name: str = "") -> SigningKey:
    principal.require("publish")
    try:
        key = load_public_key(public_key)
    except SignatureError as exc:
        raise Invalid(str(exc), param="public_key") from exc
    row = SigningKey(
        tenant_id=principal.tenant_id, key_id=public_key_id(key), public_key=public_key_b64(key), name=name
    )
    session.add(row)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(f"signing key {row.key_id} is already registered", param="public_key") from exc
    audit.record(
        session, tenant_id=principal.tenant_id, actor=principal.key_prefix, action="signing_key.add", target=row.key_id
    )
    return row


def list_keys(session: Session, *, tenant_id: int) -> list[SigningKey]:
    return list(session.scalars(select(SigningKey).where(SigningKey.tenant_id == tenant_id).order_by(SigningKey.id)))


def trusted(session: Session, *, tenant_id: int) -> list[SigningKey]:
    return [k for k in list_keys(session, tenant_id=tenant_id) if k.revoked_at is None]


def revoke_key(session: Session, *, principal: Principal, key_id: str) -> SigningKey:
    principal.require("publish")
    row = session.scalar(
        select(SigningKey).where(SigningKey.tenant_id == principal.tenant_id, SigningKey.key_id == key_id)
    )
    if row is None:
        raise NotFound(f"no signing key {key_id!r}", param="key_id")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(timezone.utc)
        audit.record(
            session,
            tenant_id=principal.tenant_id,
            actor=principal.key_prefix,
            action="signing_key.revoke",
            target=key_id,
        )
    return row


def verify(bundle: dict[str, Any], signature: dict[str, Any], keys: list[SigningKey]) -> str:
    """The digest, if `signature` verifies under one of `keys` (trusted, unrevoked); else reject."""
    key_id = str(signature.get("key_id", ""))
    match = next((k for k in keys if k.key_id == key_id), None)
    if match is None:
        raise SignatureRejected(f"signing key {key_id!r} is unknown or revoked for this tenant", param="signature")
    try:
        return verify_bundle(bundle, signature, load_public_key(match.public_key))
    except SignatureError as exc:
        raise SignatureRejected(f"signature rejected: {exc}", param="signature") from exc
