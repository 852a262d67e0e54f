"""/v1/keys (API keys) and /v1/signing-keys (trusted Ed25519 public keys)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from quote_registry.api.deps import CallerDep, SessionDep
from quote_registry.api.schemas import KeyCreate, KeyPatch, SigningKeyCreate, key_out, signing_key_out
from quote_registry.errors import Forbidden
from quote_registry.services import auth, signing_keys, tenants

router = APIRouter(tags=["keys"])


@router.post("/v1/keys", status_code=201)
def create_key(body: KeyCreate, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    if body.tenant is not None and not caller.is_admin:
        raise Forbidden("only admin keys may create keys for another tenant")
    if auth.PRIVILEGED_SCOPES & set(body.scopes) and not caller.is_admin:
        raise Forbidden("only admin keys may create admin or service keys")
    if body.limits is not None and not caller.is_admin:
        raise Forbidden("only admin keys may set a key's limits")
    tenant = tenants.get_tenant(session, name=body.tenant or caller.tenant)
    row, raw = auth.create_key(
        session,
        tenant=tenant,
        scopes=set(body.scopes),
        name=body.name,
        expires_at=body.expires_at,
        actor=caller.key_prefix,
        limits=body.limits.model_dump() if body.limits else None,
        acts_for=body.acts_for,
    )
    return {**key_out(row), "key": raw}


@router.patch("/v1/keys/{prefix}")
def patch_key(prefix: str, body: KeyPatch, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    limits = body.limits.model_dump(exclude_unset=True)
    return key_out(auth.set_limits(session, principal=caller, prefix=prefix, limits=limits))


@router.get("/v1/keys")
def list_keys(session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    return {"object": "list", "data": [key_out(k) for k in auth.list_keys(session, tenant_id=caller.tenant_id)]}


@router.delete("/v1/keys/{prefix}")
def revoke_key(prefix: str, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    return key_out(auth.revoke_key(session, principal=caller, prefix=prefix))


@router.post("/v1/signing-keys", status_code=201)
def add_signing_key(body: SigningKeyCreate, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    return signing_key_out(signing_keys.add_key(session, principal=caller, public_key=body.public_key, name=body.name))


@router.get("/v1/signing-keys")
def list_signing_keys(session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    rows = signing_keys.list_keys(session, tenant_id=caller.tenant_id)
    return {"object": "list", "data": [signing_key_out(k) for k in rows]}


@router.delete("/v1/signing-keys/{key_id}")
def revoke_signing_key(key_id: str, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    return signing_key_out(signing_keys.revoke_key(session, principal=caller, key_id=key_id))
