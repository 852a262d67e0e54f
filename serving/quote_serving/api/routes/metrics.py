"""GET /metrics: this app's Prometheus registry, as text or (when asked) OpenMetrics with exemplars."""

from __future__ import annotations

from fastapi import APIRouter, Header
from fastapi.responses import Response

from quote_serving.api.context import Ctx
from quote_serving.api.errors import NotFoundError
from quote_serving.api.observability import Obs
from quote_serving.observability.exposition import render_metrics
from quote_serving.observability.metrics_auth import check_metrics_access

router = APIRouter(tags=["observability"])


@router.get("/metrics", include_in_schema=False)
async def metrics(
    obs: Obs, ctx: Ctx, authorization: str | None = Header(None), accept: str | None = Header(None)
) -> Response:
    token = ctx.settings.metrics_token
    check_metrics_access(authorization, token.get_secret_value() if token is not None else None)
    if obs.metrics is None:
        raise NotFoundError("Metrics are disabled on this server (QUOTE_METRICS_ENABLED=false).")
    body, content_type = render_metrics(obs.metrics.registry, accept)
    return Response(body, media_type=content_type)
