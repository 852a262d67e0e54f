"""The multi-tenant gateway: API keys, per-key limits, usage, and model/mod routing to replicas.

    client (OpenAI SDK, API key)
      ─► GatewayEdge (edge.py)
           key ─► KeyAuthenticator (keys.py) ─ TTL cache ─► registry POST /v1/auth/introspect
           body ─► InferenceRequest (inference.py): model, stream, token reservation
           model ─► RouteTable (routes.py) ◄─ RouteRefresher ◄─ static file | operator ConfigMap | embedded
           limits ─► MemoryLimiter (limits.py) | RedisLimiter (redis_limits.py): 429 + Retry-After
      ─► ProxyApp (proxy.py): least-outstanding replica (replicas.py), retries before the first byte,
           tenant signed into x-quote-tenant (trust.py), response streamed back through
      ─► ResponseMeter (metering.py) ─► usage ─► UsageRecorder (usage.py) ─► registry POST /v1/usage

Standalone: `create_gateway_app` (`quote gateway`). In-process: `install_in_process_gateway`
(`quote serve --gateway`). Replicas verify the signed tenant with `TrustedTenant`.
"""

from quote_serving.gateway.app import create_gateway_app
from quote_serving.gateway.components import Gateway, GatewayConfigError
from quote_serving.gateway.edge import GatewayEdge
from quote_serving.gateway.in_process import install_in_process_gateway
from quote_serving.gateway.keys import KeyAuthenticator, KeyGrant
from quote_serving.gateway.limits import Limiter, Limits, MemoryLimiter
from quote_serving.gateway.route_sources import (
    EmbeddedRoutes,
    OperatorRoutes,
    RouteRefresher,
    RoutesError,
    RouteSource,
    StaticRoutes,
)
from quote_serving.gateway.routes import Decision, Route, RouteTable
from quote_serving.gateway.settings import GatewaySettings
from quote_serving.gateway.trust import TrustedTenant, sign_request, verify_request

__all__ = [
    "Decision",
    "EmbeddedRoutes",
    "Gateway",
    "GatewayConfigError",
    "GatewayEdge",
    "GatewaySettings",
    "KeyAuthenticator",
    "KeyGrant",
    "Limiter",
    "Limits",
    "MemoryLimiter",
    "OperatorRoutes",
    "Route",
    "RouteRefresher",
    "RouteSource",
    "RouteTable",
    "RoutesError",
    "StaticRoutes",
    "TrustedTenant",
    "create_gateway_app",
    "install_in_process_gateway",
    "sign_request",
    "verify_request",
]
