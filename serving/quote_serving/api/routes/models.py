"""GET /v1/models: base models and every `<base>/<mod>` id a client may use."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from quote_serving.api.context import Ctx
from quote_serving.api.errors import NotFoundError
from quote_serving.api.generation_request import resolve_model

router = APIRouter(tags=["openai"])


def _entry(model_id: str, created: int, owned_by: str, **extra: Any) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by, **extra}


@router.get("/v1/models")
async def list_models(ctx: Ctx) -> dict[str, Any]:
    data = [_entry(ctx.model_name, ctx.created, "quote", unsigned_mods_allowed=ctx.settings.dev_mode)]
    for version in await asyncio.to_thread(ctx.mods.latest):  # may ask the registry and load bundles
        data.append(
            _entry(f"{ctx.model_name}/{version.name}", int(version.created), "quote", mod_version=version.version)
        )
    return {"object": "list", "data": data}


@router.get("/v1/models/{model:path}")
async def retrieve_model(model: str, ctx: Ctx) -> dict[str, Any]:
    ref, _ = await asyncio.to_thread(resolve_model, ctx, model)
    if ref.base not in ctx.served_models:
        raise NotFoundError(f"The model '{model}' does not exist", param="model", code="model_not_found")
    return _entry(model, ctx.created, "quote")
