"""/v1/mods: register a `serialize_mod` payload (the seeds' flow) and list registered mods."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from quote_mod_sdk.errors import QuoteModError
from quote_registry.client import RegistryClientError
from quote_serving.api.context import Ctx
from quote_serving.api.errors import BadRequestError, NotFoundError, QuoteAPIError, UpstreamError
from quote_serving.mods.store import ModConflictError, ModVersion, UnknownModError

router = APIRouter(tags=["mods"])
logger = logging.getLogger(__name__)


class ConflictError(QuoteAPIError):
    status_code = 409
    error_type = "invalid_request_error"


class _RelayedError(QuoteAPIError):
    """A registry refusal (bad signature, bad semver, …) passed on with its own status."""

    error_type = "invalid_request_error"

    def __init__(self, status: int, message: str, code: str | None) -> None:
        super().__init__(message, code=code)
        self.status_code = status


def _describe(ctx_model: str, version: ModVersion) -> dict[str, Any]:
    return {
        "object": "mod",
        "id": version.name,
        "name": version.name,
        "version": version.version,
        "digest": version.digest,
        "created": int(version.created),
        "model": f"{ctx_model}/{version.name}",
        "max_backtrack": version.mod.max_backtrack,
        "signed": version.signed,
    }


@router.post("/v1/mods", status_code=201, response_model=None)
async def register_mod(ctx: Ctx, payload: Annotated[Any, Body()]) -> Any:
    if not isinstance(payload, dict):
        raise BadRequestError("the body must be a serialize_mod payload (a JSON object)")
    version = payload.pop("version", None)
    try:
        entry, created = ctx.mods.register(payload, None if version is None else str(version))
    except ModConflictError as exc:
        raise ConflictError(str(exc), param="version", code="version_exists") from exc
    except RegistryClientError as exc:
        if 400 <= exc.status < 500:
            raise _RelayedError(exc.status, exc.message, exc.code) from exc
        raise UpstreamError(f"the mod registry failed: {exc.message}", code="registry_unavailable") from exc
    except QuoteModError as exc:
        raise BadRequestError(f"invalid mod bundle: {exc}", code="invalid_mod") from exc
    except Exception as exc:
        raise BadRequestError(f"the mod failed to load: {type(exc).__name__}: {exc}", code="mod_load_failed") from exc
    logger.info("registered mod %s version %s (%s, unsigned: dev mode)", entry.name, entry.version, entry.digest)
    return JSONResponse(_describe(ctx.model_name, entry), status_code=201 if created else 200)


@router.get("/v1/mods")
async def list_mods(ctx: Ctx) -> dict[str, Any]:
    return {"object": "list", "data": [_describe(ctx.model_name, v) for v in ctx.mods.latest()]}


@router.get("/v1/mods/{name}")
async def get_mod(name: str, ctx: Ctx) -> dict[str, Any]:
    try:
        return _describe(ctx.model_name, ctx.mods.resolve(name))
    except UnknownModError as exc:
        raise NotFoundError(str(exc), param="name", code="mod_not_found") from exc
