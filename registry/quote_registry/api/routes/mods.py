"""/v1/mods: publish, resolve, list, show, yank, alias, visibility — and the seeds' `POST /v1/mods`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from quote_registry.api.deps import CallerDep, IdCursor, SessionDep, StateDep
from quote_registry.api.schemas import (
    AliasBody,
    ModPatch,
    PublishBody,
    SignatureBody,
    YankBody,
    mod_out,
    signing_key_out,
    version_out,
)
from quote_registry.errors import Invalid
from quote_registry.services import auth, mods

router = APIRouter(tags=["mods"])


def _published(row: Any, created: bool) -> JSONResponse:
    return JSONResponse(version_out(row), status_code=201 if created else 200)


@router.post("/v1/mods/{name}/versions", response_model=None)
def publish(name: str, body: PublishBody, session: SessionDep, caller: CallerDep, state: StateDep) -> JSONResponse:
    row, created = mods.publish(
        session,
        principal=caller,
        name=name,
        version=body.version,
        bundle=body.bundle,
        signature=body.signature.model_dump() if body.signature else None,
        dev_mode=state.settings.dev_mode,
        max_bytes=state.settings.max_bundle_bytes,
        visibility=body.visibility,
        sdk_version=body.sdk_version,
    )
    return _published(row, created)


@router.post("/v1/mods", response_model=None)
def publish_seed_payload(
    payload: Annotated[Any, Body()], session: SessionDep, caller: CallerDep, state: StateDep
) -> JSONResponse:
    """The seeds' `POST /v1/mods` with a `serialize_mod` payload: a publish (version optional)."""
    if not isinstance(payload, dict) or not payload.get("name"):
        raise Invalid("the body must be a serialize_mod payload with a 'name'", param="name")
    bundle = {k: v for k, v in payload.items() if k not in ("version", "signature", "visibility")}
    name, version = str(payload["name"]), payload.get("version") or "0.0.0"
    signature = payload.get("signature")
    if signature is not None:
        try:
            signature = SignatureBody.model_validate(signature).model_dump()
        except ValidationError:
            raise Invalid(
                "'signature' must be an object with string digest, key_id and signature", param="signature"
            ) from None
    visibility = payload.get("visibility")
    if visibility is not None and not isinstance(visibility, str):
        raise Invalid("'visibility' must be 'private' or 'public'", param="visibility")
    row, created = mods.publish(
        session,
        principal=caller,
        name=name,
        version=str(version),
        bundle=bundle,
        signature=signature,
        dev_mode=state.settings.dev_mode,
        max_bytes=state.settings.max_bundle_bytes,
        visibility=visibility,
    )
    return _published(row, created)


@router.get("/v1/mods")
def list_mods(
    session: SessionDep,
    caller: CallerDep,
    include_public: bool = False,
    after: IdCursor = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> dict[str, Any]:
    limit = max(1, min(limit, 200))
    rows = mods.list_mods(session, principal=caller, include_public=include_public, after=after, limit=limit + 1)
    page = rows[:limit]
    return {
        "object": "list",
        "data": [mod_out(m) for m in page],
        "has_more": len(rows) > limit,
        "next_cursor": page[-1].id if len(rows) > limit else None,
    }


@router.get("/v1/mods/{name}")
def show_mod(name: str, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    mod, versions, aliases = mods.get_mod(session, principal=caller, name=name)
    return mod_out(mod, versions, aliases)


@router.get("/v1/mods/{name}/resolve")
def resolve(
    name: str, session: SessionDep, caller: CallerDep, ref: str | None = None, tenant: str | None = None
) -> dict[str, Any]:
    """`tenant` (service keys only): resolve as that tenant sees mods — its own and public ones."""
    if tenant is not None:
        caller = auth.acting_for(session, principal=caller, tenant=tenant)
    found = mods.resolve(session, principal=caller, name=name, ref=ref)
    signature = None
    if found.version.signature:
        signature = {
            "digest": found.version.digest,
            "key_id": found.version.signer_key_id,
            "signature": found.version.signature,
        }
    return {
        **version_out(found.version),
        "object": "resolved_mod",
        "bundle": found.bundle,
        "signature": signature,
        "trusted_keys": [signing_key_out(k) for k in found.trusted_keys],
    }


@router.post("/v1/mods/{name}/versions/{version}/yank")
def yank(
    name: str, version: str, session: SessionDep, caller: CallerDep, body: YankBody | None = None
) -> dict[str, Any]:
    reason = body.reason if body else ""
    return version_out(
        mods.set_yanked(session, principal=caller, name=name, version=version, yanked=True, reason=reason)
    )


@router.delete("/v1/mods/{name}/versions/{version}/yank")
def unyank(name: str, version: str, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    return version_out(mods.set_yanked(session, principal=caller, name=name, version=version, yanked=False))


@router.put("/v1/mods/{name}/aliases/{alias}")
def set_alias(name: str, alias: str, body: AliasBody, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    row = mods.set_alias(session, principal=caller, name=name, alias=alias, version=body.version)
    return {"object": "alias", "mod": name, "alias": row.name, "version": row.version.version}


@router.patch("/v1/mods/{name}")
def patch_mod(name: str, body: ModPatch, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    return mod_out(mods.set_visibility(session, principal=caller, name=name, visibility=body.visibility))
