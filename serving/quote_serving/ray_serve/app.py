"""The Ray Serve application of one base model: `app_builder` is what Serve configs import.

    QuoteIngress (OpenAI API, N replicas) ──► QuoteEngine (model + ModRuntime, autoscaled)
            │                                      │
            └──────────────► QuoteModStore ◄───────┘   (mod bundles by name/version/digest)

`quote_serving.ray_serve.app:app_builder` is referenced by `deploy/ray/serve_config.yaml`, by
`serve run`, by the operator's KubeRay `RayService.spec.serveConfigV2`, and by `quote serve --ray`.
One application serves one base model; several models are several applications (one entry each
under `applications:`, each with its own route prefix or gateway route).
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from quote_serving.ray_serve.args import QuoteAppArgs
from quote_serving.ray_serve.engine import QuoteEngine
from quote_serving.ray_serve.ingress import QuoteIngress
from quote_serving.ray_serve.mod_store import QuoteModStore

__all__ = ["DEPLOYMENTS", "app_builder", "build_app"]

DEPLOYMENTS = ("QuoteIngress", "QuoteEngine", "QuoteModStore")


def app_builder(args: dict[str, Any] | QuoteAppArgs) -> Application:
    """Serve's application builder: `args` is the config's `args:` mapping (validated, unknown keys refused)."""
    return build_app(args if isinstance(args, QuoteAppArgs) else QuoteAppArgs.model_validate(args or {}))


def build_app(args: QuoteAppArgs) -> Application:
    store = serve.deployment(
        name="QuoteModStore", num_replicas=1, ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000
    )(QuoteModStore)
    engine = serve.deployment(name="QuoteEngine", **args.engine_options())(QuoteEngine)
    ingress = serve.deployment(name="QuoteIngress", **args.ingress_options())(QuoteIngress)
    mod_store = store.bind()
    application: Application = ingress.bind(args, engine.bind(args, mod_store), mod_store)
    return application
