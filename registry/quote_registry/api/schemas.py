"""Request bodies and response shapes of the registry API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from quote_registry.models import Alias, ApiKey, Mod, ModVersion, SigningKey, Tenant


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantCreate(_Body):
    name: str


class KeyLimits(_Body):
    """Gateway limits of one key; None: the gateway's default. Only admins set them."""

    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    max_concurrent: int | None = Field(None, ge=1)


class KeyCreate(_Body):
    name: str = ""
    scopes: list[str] = Field(default_factory=lambda: ["infer"])
    expires_at: datetime | None = None
    tenant: str | None = Field(None, description="admin only: create the key for another tenant")
    limits: KeyLimits | None = Field(None, description="admin only: the gateway's limits for this key")
    acts_for: list[str] | None = Field(
        None, max_length=1000, description="service keys: the tenants it may act for ('*': any); default none"
    )


class KeyPatch(_Body):
    limits: KeyLimits


class IntrospectBody(_Body):
    key: str = Field(max_length=512)


class UsageIn(_Body):
    request_id: str = Field(min_length=1, max_length=128)
    key_prefix: str = Field(min_length=1, max_length=32)
    model: str = Field(min_length=1, max_length=256)
    mod: str = Field("", max_length=160)
    mod_ref: str = Field("", max_length=64)
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    streamed: bool = False
    usage_token: str = Field("", max_length=128, description="from this service key's introspection of the key")


class UsageBatch(_Body):
    records: list[UsageIn] = Field(max_length=1000)


class SigningKeyCreate(_Body):
    public_key: str
    name: str = ""


class SignatureBody(_Body):
    digest: str
    key_id: str
    signature: str


class PublishBody(_Body):
    version: str
    bundle: dict[str, Any]
    signature: SignatureBody | None = None
    visibility: str | None = None
    sdk_version: str = ""


class YankBody(_Body):
    reason: str = ""


class AliasBody(_Body):
    version: str


class ModPatch(_Body):
    visibility: str


def _ts(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def tenant_out(t: Tenant) -> dict[str, Any]:
    return {"object": "tenant", "name": t.name, "created_at": _ts(t.created_at)}


def key_out(k: ApiKey) -> dict[str, Any]:
    return {
        "object": "api_key",
        "prefix": k.prefix,
        "name": k.name,
        "scopes": k.scopes.split(),
        "tenant": k.tenant.name,
        "created_at": _ts(k.created_at),
        "expires_at": _ts(k.expires_at),
        "revoked": k.revoked_at is not None,
        "limits": limits_out(k),
        "acts_for": k.acts_for.split(),
    }


def limits_out(k: ApiKey) -> dict[str, int | None]:
    return {
        "requests_per_minute": k.requests_per_minute,
        "tokens_per_minute": k.tokens_per_minute,
        "max_concurrent": k.max_concurrent,
    }


def introspection_out(k: ApiKey) -> dict[str, Any]:
    """What a gateway needs to admit a request: the tenant, scopes, expiry and limits; never the hash."""
    return {
        "object": "introspection",
        "active": True,
        "tenant": k.tenant.name,
        "prefix": k.prefix,
        "scopes": k.scopes.split(),
        "expires_at": _ts(k.expires_at),
        "limits": limits_out(k),
    }


def signing_key_out(k: SigningKey) -> dict[str, Any]:
    return {
        "object": "signing_key",
        "key_id": k.key_id,
        "public_key": k.public_key,
        "name": k.name,
        "created_at": _ts(k.created_at),
        "revoked": k.revoked_at is not None,
    }


def version_out(v: ModVersion) -> dict[str, Any]:
    return {
        "object": "mod_version",
        "mod": v.mod.name,
        "owner": v.mod.tenant.name,
        "version": v.version,
        "digest": v.digest,
        "size": v.size,
        "sdk_version": v.sdk_version,
        "signed": v.signature is not None,
        "signer_key_id": v.signer_key_id,
        "published_by": v.published_by,
        "created_at": _ts(v.created_at),
        "yanked": v.yanked_at is not None,
        "yank_reason": v.yank_reason or None,
    }


def mod_out(m: Mod, versions: list[ModVersion] | None = None, aliases: list[Alias] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "object": "mod",
        "name": m.name,
        "owner": m.tenant.name,
        "visibility": m.visibility,
        "description": m.description,
        "created_at": _ts(m.created_at),
    }
    if versions is not None:
        out["versions"] = [version_out(v) for v in versions]
    if aliases is not None:
        out["aliases"] = {a.name: a.version.version for a in aliases}
    return out
