"""Quote's Kubernetes operator: a `QuoteModel` becomes a RayService or InferenceService, a Service and a route.

Layers (each imports only those to its left):

    errors, settings ─ spec, routes, conditions ─ render, readiness ─ kube, route_table ─ reconcile ─ handlers

`routes` (the route-table format the gateway reads) imports nothing else of ours and neither kopf nor a
Kubernetes client, so the gateway can use it alone. `handlers` (kopf) is imported only by the runner:
`python -m quote_operator`.
"""

from __future__ import annotations

from .errors import InvalidSpec, KubeError, NameTaken, QuoteOperatorError
from .routes import RouteEntry, RouteSource, load_dir, route_key
from .settings import OperatorSettings
from .spec import QuoteModelSpec, parse

__all__ = [
    "InvalidSpec",
    "KubeError",
    "NameTaken",
    "OperatorSettings",
    "QuoteModelSpec",
    "QuoteOperatorError",
    "RouteEntry",
    "RouteSource",
    "load_dir",
    "parse",
    "route_key",
]
