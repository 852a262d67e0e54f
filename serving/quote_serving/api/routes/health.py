"""/healthz (the process is alive and its engine thread runs) and /readyz (ready for traffic)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from quote_serving.api.context import Ctx

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=None)
async def healthz(ctx: Ctx) -> Any:
    ok = ctx.runtime.healthy
    return JSONResponse({"status": "ok" if ok else "engine stopped"}, status_code=200 if ok else 503)


@router.get("/readyz", response_model=None)
async def readyz(ctx: Ctx) -> Any:
    ok = ctx.runtime.healthy
    body = {"status": "ready" if ok else "not ready", "model": ctx.model_name, "load": ctx.runtime.load}
    return JSONResponse(body, status_code=200 if ok else 503)
