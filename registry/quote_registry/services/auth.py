"""API keys: random, shown once, stored as sha256, found by prefix, compared in constant time.

Scopes: `infer` (call models), `publish` (mods), `admin` (everything), and `service` for platform
components — gateways and serving replicas — which introspect other keys, record usage and resolve
mods on a tenant's behalf (`acting_for`). Only admins create admin or service keys.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from quote_mod_sdk.names import TENANT as TENANT_NAME
from quote_registry.errors import Forbidden, Invalid, NotFound, Unauthorized
from quote_registry.models import ApiKey, Tenant
from quote_registry.services import audit

SCOPES = frozenset({"infer", "publish", "admin", "service"})
PRIVILEGED_SCOPES = frozenset({"admin", "service"})
KEY_PREFIX = "qk_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant, the key's public prefix (safe to log) and its scopes."""

    tenant_id: int
    tenant: str
    key_prefix: str
    scopes: frozenset[str]
    acts_for: frozenset[str] = frozenset()  # service keys: tenants it may act for ("*": any)

    def require(self, scope: str) -> None:
        if scope not in self.scopes and "admin" not in self.scopes:
            raise Forbidden(f"this API key lacks the '{scope}' scope")

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(raw: str) -> tuple[str, str]:
    """'qk_<prefix>_<secret>' → (prefix, secret); anything else is an unknown key."""
    if not raw.startswith(KEY_PREFIX) or raw.count("_") < 2:
        raise Unauthorized("Incorrect API key provided.")
    prefix, _, secret = raw[len(KEY_PREFIX) :].partition("_")
    return prefix, secret


def create_key(
    session: Session,
    *,
    tenant: Tenant,
    scopes: set[str],
    name: str = "",
    expires_at: datetime | None = None,
    actor: str,
    raw: str | None = None,
    limits: dict[str, int | None] | None = None,
    acts_for: list[str] | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns (row, the full key — the only time it exists in clear)."""
    unknown = set(scopes) - SCOPES
    if not scopes or unknown:
        raise Invalid(f"scopes must be a non-empty subset of {sorted(SCOPES)}", param="scopes")
    acts_for = sorted(set(acts_for or []))
    if acts_for and "service" not in scopes:
        raise Invalid("only service keys act for tenants", param="acts_for")
    bad = [t for t in acts_for if t != "*" and not TENANT_NAME.fullmatch(t)]
    if bad or len(acts_for) > 1000:
        raise Invalid(f"acts_for lists tenant names (or '*'): {bad[:3]!r} are not", param="acts_for")
    if raw is None:
        prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        raw = f"{KEY_PREFIX}{prefix}_{secret}"
    else:
        prefix, secret = split_key(raw)
    row = ApiKey(
        tenant_id=tenant.id,
        name=name,
        prefix=prefix,
        secret_hash=_hash(secret),
        scopes=" ".join(sorted(scopes)),
        expires_at=expires_at,
        acts_for=" ".join(acts_for),
        **{field: value for field, value in (limits or {}).items() if field in LIMIT_FIELDS},
    )
    session.add(row)
    session.flush()
    audit.record(session, tenant_id=tenant.id, actor=actor, action="key.create", target=prefix, scopes=sorted(scopes))
    return row, raw


def authenticate(session: Session, raw: str, *, now: datetime | None = None) -> Principal:
    row = authenticated_key(session, raw, now=now)
    return Principal(
        row.tenant_id, row.tenant.name, row.prefix, frozenset(row.scopes.split()), frozenset(row.acts_for.split())
    )


def authenticated_key(session: Session, raw: str, *, now: datetime | None = None) -> ApiKey:
    """The live key row `raw` names; Unauthorized (saying why) for unknown, revoked or expired keys."""
    prefix, secret = split_key(raw)
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    # Compare against a dummy hash when the prefix is unknown, so timing does not tell either case.
    expected = row.secret_hash if row is not None else _hash("")
    if not hmac.compare_digest(expected, _hash(secret)) or row is None:
        raise Unauthorized("Incorrect API key provided.")
    now = now or datetime.now(timezone.utc)
    if row.revoked_at is not None:
        raise Unauthorized("This API key has been revoked.")
    if row.expires_at is not None and _aware(row.expires_at) <= now:
        raise Unauthorized("This API key has expired.")
    return row


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def usage_token(service_key: ApiKey, key_prefix: str) -> str:
    """What a gateway must attach to usage it records for `key_prefix`: proof this registry vouched for
    that key to this service key (in an introspection), so a stolen service key forges no one's usage."""
    message = f"usage:{key_prefix}".encode("utf-8", "surrogatepass")  # any text a client sent hashes
    return hmac.new(service_key.usage_secret.encode(), message, hashlib.sha256).hexdigest()


def service_key_row(session: Session, principal: Principal) -> ApiKey:
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == principal.key_prefix))
    if row is None or not row.usage_secret:
        raise Forbidden("this key cannot vouch for usage: create a new service key")
    return row


def acting_for(session: Session, *, principal: Principal, tenant: str) -> Principal:
    """A service key calling for `tenant`: that tenant's view (its own and public mods), infer only."""
    principal.require("service")
    allowed = principal.is_admin or "*" in principal.acts_for or tenant in principal.acts_for
    row = session.scalar(select(Tenant).where(Tenant.name == tenant)) if allowed else None
    if row is None:  # a tenant this key may not act for looks exactly like one that does not exist
        raise NotFound(f"no tenant named {tenant!r}", param="tenant")
    return Principal(row.id, row.name, f"{principal.key_prefix}>{row.name}", frozenset({"infer"}))


def list_keys(session: Session, *, tenant_id: int) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.id)))


def revoke_key(session: Session, *, principal: Principal, prefix: str) -> ApiKey:
    query = select(ApiKey).where(ApiKey.prefix == prefix)
    if not principal.is_admin:
        query = query.where(ApiKey.tenant_id == principal.tenant_id)
    row = session.scalar(query)
    if row is None:
        raise NotFound(f"no API key with prefix {prefix!r}", param="prefix")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(timezone.utc)
        audit.record(session, tenant_id=row.tenant_id, actor=principal.key_prefix, action="key.revoke", target=prefix)
    return row


def set_limits(session: Session, *, principal: Principal, prefix: str, limits: dict[str, int | None]) -> ApiKey:
    """Set a key's gateway limits (admins only: a tenant must not lift its own limits)."""
    principal.require("admin")
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None:
        raise NotFound(f"no API key with prefix {prefix!r}", param="prefix")
    for field in LIMIT_FIELDS:
        if field in limits:
            setattr(row, field, limits[field])
    audit.record(
        session, tenant_id=row.tenant_id, actor=principal.key_prefix, action="key.limits", target=prefix, **limits
    )
    return row


LIMIT_FIELDS = ("requests_per_minute", "tokens_per_minute", "max_concurrent")
