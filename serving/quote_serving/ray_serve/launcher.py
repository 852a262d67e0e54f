"""`quote serve --ray`: the Ray Serve application on a local Ray, until SIGINT or SIGTERM.

    QuoteAppArgs (CLI flags + QUOTE_RAY_ARGS) ─► ray.init (local, or the cluster at RAY_ADDRESS)
        ─► serve.start(http host:port) ─► serve.run(build_app(args), name=app_name, route_prefix="/")
        ─► wait for a signal ─► shut down what this process started (its own Ray), or delete its app

Serve configs (`serve run deploy/ray/serve_config.yaml`, KubeRay's serveConfigV2) reach the same
`build_app` through `app_builder`; this is the local, one-command way.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from quote_serving.ray_serve.app import build_app
from quote_serving.ray_serve.args import QuoteAppArgs

__all__ = ["RayLaunchSettings", "serve_on_ray"]

logger = logging.getLogger(__name__)


class RayLaunchSettings(BaseSettings):
    """How `quote serve --ray` starts Ray and the app (environment: QUOTE_RAY_*)."""

    model_config = SettingsConfigDict(env_prefix="QUOTE_RAY_", extra="ignore")

    app_name: str = Field(default="quote", description="Serve application name")
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs of a local Ray; default: all of this machine's")
    args: dict[str, Any] = Field(
        default_factory=dict, description='more app_builder args as JSON, e.g. {"min_replicas": 1, "max_replicas": 2}'
    )


def serve_on_ray(given: dict[str, Any], *, host: str, port: int, settings: RayLaunchSettings | None = None) -> None:
    """Run the application until SIGINT/SIGTERM; `given`: app args from CLI flags (None: unset)."""
    import ray
    from ray import serve

    settings = settings or RayLaunchSettings()
    given = {k: v for k, v in given.items() if v is not None}
    if "registry_api_key" in given:  # a secret: replicas read it from their environment, never from args
        os.environ["QUOTE_REGISTRY_API_KEY"] = str(given.pop("registry_api_key"))
    args = QuoteAppArgs.model_validate({**settings.args, **given})
    stop = _stop_on_signal(threading.Event())  # a signal during start-up still ends in an orderly shutdown
    own_cluster = not os.environ.get("RAY_ADDRESS")
    ray.init(num_cpus=settings.num_cpus if own_cluster else None, include_dashboard=False)
    _stop_on_signal(stop)  # again: ray.init installs a native SIGTERM handler that aborts the process
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(build_app(args), name=settings.app_name, route_prefix="/")
        replicas = f"{args.min_replicas}-{args.max_replicas} engine replicas"
        print(f"quote serve --ray: app {settings.app_name!r} ({replicas}) on http://{host}:{port}/v1", flush=True)
        stop.wait()
        logger.info("stopping: Serve drains running requests first")
    finally:
        if own_cluster:
            serve.shutdown()  # type: ignore[no-untyped-call]  # Ray leaves it untyped
            ray.shutdown()
        else:
            serve.delete(settings.app_name)


def _stop_on_signal(stop: threading.Event) -> threading.Event:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop
