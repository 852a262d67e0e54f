"""GET /v1/traces/{id}: one request's tokens (sampled/forced/erased), top-k logprobs, mod calls."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from quote_serving.api.context import Ctx
from quote_serving.api.errors import NotFoundError
from quote_serving.runtime.traces import trace_to_json

router = APIRouter(tags=["traces"])


@router.get("/v1/traces")
async def list_traces(ctx: Ctx, limit: int = 50) -> dict[str, Any]:
    items = ctx.runtime.traces.recent(limit=max(1, min(limit, 500)))
    data = [{"id": s.trace.request_id, "model": s.model, "mod": s.trace.mod, "created": int(s.created)} for s in items]
    return {"object": "list", "data": data}


@router.get("/v1/traces/{request_id}")
async def get_trace(request_id: str, ctx: Ctx) -> dict[str, Any]:
    stored = ctx.runtime.traces.get(request_id)
    if stored is None:
        raise NotFoundError(f"No trace for request '{request_id}' (unknown, or evicted)", param="request_id")
    return trace_to_json(stored, ctx.tokenizer)
