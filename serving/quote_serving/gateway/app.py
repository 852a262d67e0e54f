"""The standalone gateway (`quote gateway`): wiring only.

GatewayEdge (auth, routes, limits, usage; lifespan starts the parts)
  └► FastAPI
       POST /v1/chat/completions, /v1/completions ─► ProxyApp ─► replicas
       GET  /v1/models, /v1/models/{model}         the models this tenant may call
       GET  /healthz, /readyz, /metrics            probes and Prometheus (rate-limit refusals)
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import Route as AsgiRoute

from quote_serving.api.errors import install_error_handlers
from quote_serving.gateway.components import Gateway, route_source
from quote_serving.gateway.edge import INFERENCE_PATHS, GatewayEdge
from quote_serving.gateway.route_sources import RouteSource
from quote_serving.gateway.routes import Route
from quote_serving.gateway.settings import GatewaySettings
from quote_serving.gateway.trace_routes import install_trace_routes
from quote_serving.observability import QuoteMetrics
from quote_serving.observability.metrics_auth import check_metrics_access

__all__ = ["create_gateway_app"]


def _model(route: Route) -> dict[str, Any]:
    return {"id": route.model, "object": "model", "created": 0, "owned_by": "quote"}


def create_gateway_app(settings: GatewaySettings, *, source: RouteSource | None = None) -> GatewayEdge:
    gateway = Gateway.build(settings, source or route_source(settings), proxy=True)
    assert gateway.proxy is not None
    metrics = QuoteMetrics()
    gateway.on_refusal = lambda tenant, limit: metrics.rate_limit_refusals.labels(tenant, limit).inc()
    app = FastAPI(title="Quote gateway", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gateway = gateway
    install_error_handlers(app)
    for path in sorted(INFERENCE_PATHS):
        app.router.routes.append(AsgiRoute(path, gateway.proxy, methods=["POST"]))

    if settings.registry_url:  # traces, share links, usage and the timeline page, from the trace store
        install_trace_routes(app, settings.registry_url)

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        routes = gateway.table.visible_to(request.state.tenant)
        return {"object": "list", "data": [_model(r) for r in sorted(routes, key=lambda r: r.model)]}

    @app.get("/v1/models/{model:path}")
    async def retrieve_model(model: str, request: Request) -> dict[str, Any]:
        return _model(gateway.table.decide(model, request.state.tenant).route)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=None)
    async def readyz() -> JSONResponse:
        ready = len(gateway.table) > 0
        body = {"status": "ready" if ready else "no routes", "models": len(gateway.table)}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(authorization: str | None = Header(None)) -> Response:
        token = settings.metrics_token
        check_metrics_access(authorization, token.get_secret_value() if token is not None else None)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return GatewayEdge(app, gateway, inference=gateway.proxy)
