"""The gateway inside `quote serve --gateway`: the same edge, wrapped around the embedded app.

    client ─► GatewayEdge (keys, route = the served model, limits, usage) ─► embedded FastAPI app
              state["tenant"] ─► GenerationRequest.tenant, mods resolved as that tenant, traces filtered

There is no hop and no signed header: the edge and the routes share a process, so the tenant is
handed over in the ASGI scope. Without `--gateway`, `quote serve` stays the keyless development
server.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI

from quote_serving.gateway.components import Gateway
from quote_serving.gateway.edge import GatewayEdge
from quote_serving.gateway.route_sources import EmbeddedRoutes
from quote_serving.gateway.routes import ALL
from quote_serving.gateway.settings import GatewaySettings

__all__ = ["install_in_process_gateway"]


def install_in_process_gateway(
    app: FastAPI, model: str, settings: GatewaySettings, *, tenants: Sequence[str] = (ALL,)
) -> Gateway:
    """Put the edge in front of `app` (before it starts); returns the gateway's parts."""
    gateway = Gateway.build(settings, EmbeddedRoutes(model, tenants=tenants), proxy=False)
    observability = getattr(app.state, "observability", None)
    metrics = getattr(observability, "metrics", None)
    if metrics is not None:
        gateway.on_refusal = lambda tenant, limit: metrics.rate_limit_refusals.labels(tenant, limit).inc()
    app.add_middleware(GatewayEdge, gateway=gateway, replay_body=True)
    return gateway
