"""GET /metrics: this app's Prometheus registry in the text exposition format."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from quote_serving.api.errors import NotFoundError
from quote_serving.api.observability import Obs

router = APIRouter(tags=["observability"])


@router.get("/metrics", include_in_schema=False)
async def metrics(obs: Obs) -> Response:
    if obs.metrics is None:
        raise NotFoundError("Metrics are disabled on this server (QUOTE_METRICS_ENABLED=false).")
    return Response(generate_latest(obs.metrics.registry), media_type=CONTENT_TYPE_LATEST)
