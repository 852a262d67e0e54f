"""Mods and their versions: publish (atomic, immutable), resolve (aliases, ranges, yanks), list.

Visibility rule, applied in one place (`_visible_mod`): a caller sees its own tenant's mods and
public ones; anything else is reported exactly like a mod that does not exist (no oracle).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from quote_mod_sdk import names
from quote_mod_sdk.errors import SerializationError
from quote_mod_sdk.serialize import bundle_digest, canonical_bundle, validate_bundle
from quote_registry.errors import Conflict, Invalid, NotFound, RegistryError, SignatureRejected
from quote_registry.models import Alias, Mod, ModVersion, SigningKey, Tenant
from quote_registry.services import audit, semver, signing_keys
from quote_registry.services.auth import Principal


class BundleTooLarge(Invalid):
    status_code = 413


@dataclass(frozen=True)
class Resolved:
    """What serving needs to run a version: the bundle, its signature and the owner's trusted keys."""

    owner: str
    name: str
    version: ModVersion
    bundle: dict[str, Any]
    trusted_keys: list[SigningKey]


def _check_name(name: str) -> None:
    try:
        names.check_mod_name(name)
    except names.InvalidName as exc:
        raise Invalid(str(exc), param="name") from None


def _check_ref(ref: str | None) -> None:
    """Before any query: a ref outside the grammar (`@^`, `@,`, 5,000 digits) is a 400, never a lookup."""
    if ref is None:
        return
    try:
        names.check_ref(ref)
    except names.InvalidName as exc:
        raise Invalid(str(exc), param="ref") from None


def _prepared(bundle: Any, name: str, max_bytes: int) -> tuple[dict[str, Any], bytes]:
    if not isinstance(bundle, dict):
        raise Invalid("bundle must be a JSON object (a serialize_mod payload)", param="bundle")
    try:
        spec = validate_bundle({**bundle, "name": bundle.get("name") or name})
    except SerializationError as exc:
        raise Invalid(f"invalid bundle: {exc}", param="bundle") from exc
    if spec["name"] != name:
        raise Invalid(f"the bundle is named {spec['name']!r} but is published as {name!r}", param="name")
    canonical = canonical_bundle(spec)
    if len(canonical) > max_bytes:
        raise BundleTooLarge(f"bundle is {len(canonical)} bytes; the limit is {max_bytes}", param="bundle")
    return json.loads(canonical), canonical


def publish(
    session: Session,
    *,
    principal: Principal,
    name: str,
    version: str,
    bundle: Any,
    signature: dict[str, Any] | None,
    dev_mode: bool,
    max_bytes: int,
    visibility: str | None = None,
    sdk_version: str = "",
) -> tuple[ModVersion, bool]:
    """Store a new immutable version; (row, created). Identical content again is a no-op."""
    principal.require("publish")
    _check_name(name)
    semver.parse(version)
    spec, canonical = _prepared(bundle, name, max_bytes)
    digest = bundle_digest(spec)
    if signature is not None:
        signing_keys.verify(spec, signature, signing_keys.trusted(session, tenant_id=principal.tenant_id))
    elif not dev_mode:
        raise SignatureRejected("unsigned bundles are accepted only in development mode; sign it (quote mods publish)")
    mod = _get_or_create_mod(session, principal, name, visibility, spec.get("description", ""))
    existing = _version(session, mod.id, version)
    if existing is not None:
        return _same_or_conflict(existing, digest), False
    row = ModVersion(
        mod_id=mod.id,
        version=version,
        digest=digest,
        bundle=canonical.decode(),
        size=len(canonical),
        sdk_version=sdk_version,
        signature=(signature or {}).get("signature"),
        signer_key_id=(signature or {}).get("key_id"),
        published_by=principal.key_prefix,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # A concurrent publish of the same version committed first.
        existing = _version(session, mod.id, version)
        if existing is None:
            raise
        return _same_or_conflict(existing, digest), False
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.key_prefix,
        action="mod.publish",
        target=f"{name}@{version}",
        digest=digest,
        signed=signature is not None,
    )
    return row, True


def _same_or_conflict(existing: ModVersion, digest: str) -> ModVersion:
    if existing.digest != digest:
        raise Conflict(
            f"version {existing.version} of {existing.mod.name!r} already exists with other content; "
            "versions are immutable: publish a new version",
            param="version",
        )
    return existing


def _get_or_create_mod(
    session: Session, principal: Principal, name: str, visibility: str | None, description: str
) -> Mod:
    query = select(Mod).where(Mod.tenant_id == principal.tenant_id, Mod.name == name)
    mod = session.scalar(query)
    if mod is not None:
        return mod
    if visibility not in (None, "private", "public"):
        raise Invalid("visibility must be 'private' or 'public'", param="visibility")
    try:
        with session.begin_nested():
            mod = Mod(
                tenant_id=principal.tenant_id, name=name, visibility=visibility or "private", description=description
            )
            session.add(mod)
    except IntegrityError:
        mod = session.scalar(query)
        if mod is None:
            raise
    return mod


def _version(session: Session, mod_id: int, version: str) -> ModVersion | None:
    return session.scalar(select(ModVersion).where(ModVersion.mod_id == mod_id, ModVersion.version == version))


def _visible_mod(session: Session, principal: Principal, ref: str) -> Mod:
    owner, _, name = ref.rpartition(":")
    query = select(Mod).join(Tenant).where(Mod.name == name, Tenant.name == (owner or principal.tenant))
    mod = session.scalar(query)
    if mod is None or not (mod.tenant_id == principal.tenant_id or mod.visibility == "public" or principal.is_admin):
        raise NotFound(f"The mod '{ref}' does not exist or you do not have access to it.", param="name")
    return mod


def _versions(session: Session, mod: Mod) -> list[ModVersion]:
    return list(session.scalars(select(ModVersion).where(ModVersion.mod_id == mod.id)))


def _pick(session: Session, mod: Mod, ref: str | None) -> ModVersion:
    versions = _versions(session, mod)
    alias = session.scalar(select(Alias).where(Alias.mod_id == mod.id, Alias.name == (ref or "latest")))
    exact = next((v for v in versions if v.version == ref), None)
    if exact is not None:
        return exact  # pinned exactly: loads even when yanked
    if alias is not None:
        if alias.version.yanked_at is not None:
            raise NotFound(
                f"alias {alias.name!r} of {mod.name!r} points to yanked version {alias.version.version}", param="ref"
            )
        return alias.version
    live = [v for v in versions if v.yanked_at is None]
    if ref in (None, "latest"):
        candidates = [v for v in live if not semver.parse(v.version).pre] or live  # pre-releases only as a last resort
    elif semver.is_range(ref):
        candidates = [v for v in live if semver.matches(semver.parse(v.version), ref)]
    else:
        raise NotFound(f"{mod.name!r} has no version or alias {ref!r}", param="ref")
    if not candidates:
        raise NotFound(f"no live version of {mod.name!r} matches {ref or 'latest'!r}", param="ref")
    return max(candidates, key=lambda v: semver.parse(v.version).key())


def resolve(session: Session, *, principal: Principal, name: str, ref: str | None = None) -> Resolved:
    principal.require("infer")
    try:
        names.check_mod_lookup(name)
    except names.InvalidName as exc:
        raise Invalid(str(exc), param="name") from None
    _check_ref(ref)
    mod = _visible_mod(session, principal, name)
    version = _pick(session, mod, ref)
    keys = signing_keys.trusted(session, tenant_id=mod.tenant_id)
    return Resolved(mod.tenant.name, mod.name, version, json.loads(version.bundle), keys)


def get_mod(session: Session, *, principal: Principal, name: str) -> tuple[Mod, list[ModVersion], list[Alias]]:
    mod = _visible_mod(session, principal, name)
    aliases = list(session.scalars(select(Alias).where(Alias.mod_id == mod.id).order_by(Alias.name)))
    versions = sorted(_versions(session, mod), key=lambda v: semver.parse(v.version).key())
    return mod, versions, aliases


def list_mods(
    session: Session, *, principal: Principal, include_public: bool = False, after: int = 0, limit: int = 50
) -> list[Mod]:
    query = select(Mod).where(Mod.id > after).order_by(Mod.id).limit(limit)
    if include_public:
        query = query.where((Mod.tenant_id == principal.tenant_id) | (Mod.visibility == "public"))
    else:
        query = query.where(Mod.tenant_id == principal.tenant_id)
    return list(session.scalars(query))


def _own_mod(session: Session, principal: Principal, name: str) -> Mod:
    principal.require("publish")
    mod = _visible_mod(session, principal, name)
    if mod.tenant_id != principal.tenant_id:
        raise NotFound(f"The mod '{name}' does not exist or you do not have access to it.", param="name")
    return mod


def set_yanked(
    session: Session, *, principal: Principal, name: str, version: str, yanked: bool, reason: str = ""
) -> ModVersion:
    mod = _own_mod(session, principal, name)
    row = _version(session, mod.id, version)
    if row is None:
        raise NotFound(f"{name!r} has no version {version!r}", param="version")
    row.yanked_at = datetime.now(timezone.utc) if yanked else None
    row.yank_reason = reason if yanked else ""
    action = "mod.yank" if yanked else "mod.unyank"
    audit.record(
        session,
        tenant_id=mod.tenant_id,
        actor=principal.key_prefix,
        action=action,
        target=f"{name}@{version}",
        reason=reason,
    )
    return row


def set_alias(session: Session, *, principal: Principal, name: str, alias: str, version: str) -> Alias:
    mod = _own_mod(session, principal, name)
    try:
        names.check_alias(alias)
    except names.InvalidName as exc:
        raise Invalid(str(exc), param="alias") from None
    row = _version(session, mod.id, version)
    if row is None:
        raise NotFound(f"{name!r} has no version {version!r}", param="version")
    if row.yanked_at is not None:
        raise Conflict(f"version {version} is yanked; an alias may not point to it", param="version")
    current = session.scalar(select(Alias).where(Alias.mod_id == mod.id, Alias.name == alias))
    previous = current.version.version if current is not None else None
    if current is None:
        current = Alias(mod_id=mod.id, name=alias, version_id=row.id)
        session.add(current)
    else:
        current.version_id, current.updated_at = row.id, datetime.now(timezone.utc)
    session.flush()
    session.refresh(current)
    audit.record(
        session,
        tenant_id=mod.tenant_id,
        actor=principal.key_prefix,
        action="alias.move",
        target=f"{name}:{alias}",
        to=version,
        previous=previous,
    )
    return current


def set_visibility(session: Session, *, principal: Principal, name: str, visibility: str) -> Mod:
    mod = _own_mod(session, principal, name)
    if visibility not in ("private", "public"):
        raise Invalid("visibility must be 'private' or 'public'", param="visibility")
    if mod.visibility != visibility:
        mod.visibility = visibility
        audit.record(
            session,
            tenant_id=mod.tenant_id,
            actor=principal.key_prefix,
            action="mod.visibility",
            target=name,
            to=visibility,
        )
    return mod


__all__ = [
    "BundleTooLarge",
    "RegistryError",
    "Resolved",
    "get_mod",
    "list_mods",
    "publish",
    "resolve",
    "set_alias",
    "set_visibility",
    "set_yanked",
]
