"""Pure functions from a validated QuoteModel spec to the manifests of its children.

    spec.parse ─► QuoteModelSpec ─► render.children(...) ─► [Child(kind, manifest)] ─► reconcile applies them

One module per child kind; `common` holds what they share (labels, owner references, the serving
environment). Nothing here talks to the API server, so every rendering rule is unit-testable.
"""

from __future__ import annotations

from ..settings import OperatorSettings
from ..spec import QuoteModelSpec
from .common import Child, Owner, endpoint_url, model_labels
from .kserve import inference_service
from .ray import ray_service
from .service import service

__all__ = ["Child", "Owner", "children", "endpoint_url", "model_labels"]


def children(spec: QuoteModelSpec, owner: Owner, settings: OperatorSettings) -> list[Child]:
    """Every object the QuoteModel needs: per deployment, its runtime object and its Service."""
    runtime = ray_service if spec.runtime == "ray" else inference_service
    out: list[Child] = []
    for deployment in spec.deployments:
        out.append(runtime(spec, deployment, owner, settings))
        out.append(service(spec, deployment, owner, settings))
    return out
