"""A real local Ray (2 CPUs) with Serve on 127.0.0.1, and helpers to deploy Quote apps on it.

Apps are deployed the way `serve run deploy/ray/serve_config.yaml` and KubeRay deploy them: the
YAML's import path is imported and called with the YAML's `args` (tests override a few for speed),
each app under its own route prefix. Ray is shut down when this folder's tests are done.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from quote_mod_sdk import serialize_mod
from tests.ports import free_port
from tests.ray import mods

REPO = Path(__file__).resolve().parents[2]
SERVE_CONFIG = REPO / "deploy" / "ray" / "serve_config.yaml"
RAY_STARTUP_BUDGET_S = 120


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def config_application() -> dict[str, Any]:
    (application,) = yaml.safe_load(SERVE_CONFIG.read_text())["applications"]
    return dict(application)


@dataclass
class QuoteApp:
    name: str
    base_url: str  # http://127.0.0.1:<port>/<name>

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"

    def openai(self, timeout: float = 60) -> Any:
        import openai

        return openai.OpenAI(base_url=self.v1, api_key="unused-in-dev-mode", max_retries=0, timeout=timeout)

    def register(self, fn: Any, name: str) -> None:
        response = httpx.post(self.v1 + "/mods", json=serialize_mod(fn, name=name), timeout=60)
        assert response.status_code in (200, 201), response.text

    def running_engines(self) -> int:
        from ray import serve

        app = serve.status().applications.get(self.name)
        deployment = app.deployments.get("QuoteEngine") if app else None
        return 0 if deployment is None else int(deployment.replica_states.get("RUNNING", 0))


@dataclass
class ServeCluster:
    http_port: int

    def deploy(self, name: str, **args: Any) -> QuoteApp:
        """Deploy the serve config's application (its args overridden by `args`) as `name`."""
        from ray import serve

        application = config_application()
        module, _, attr = application["import_path"].partition(":")
        builder = getattr(importlib.import_module(module), attr)
        serve.run(builder({**application["args"], **args}), name=name, route_prefix=f"/{name}")
        return QuoteApp(name, f"http://127.0.0.1:{self.http_port}/{name}")


@pytest.fixture(scope="package")  # started once for tests/ray, shut down before the rest of a full run
def ray_cluster() -> Iterator[ServeCluster]:
    import ray
    from ray import serve

    port = free_port()
    started = time.monotonic()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # One declared GPU (none need be present): a GPU replica (engine: sglang) is placed, so what it
    # reports is its own check, not Ray waiting forever for a resource.
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        assert time.monotonic() - started < RAY_STARTUP_BUDGET_S, "Ray and Serve took too long to start"
        yield ServeCluster(port)
    finally:
        serve.shutdown()
        ray.shutdown()


def deploy_with_mods(cluster: ServeCluster, name: str, **args: Any) -> Iterator[QuoteApp]:
    """Deploy an app, register the test mods, and delete the app afterwards (freeing its CPUs)."""
    from ray import serve

    app = cluster.deploy(name, **args)
    try:
        app.register(mods.mark, "mark")
        app.register(mods.slow, "slow")
        yield app
    finally:
        if name in serve.status().applications:  # a test may have deleted it already
            serve.delete(name)


def pytest_configure(config: pytest.Config) -> None:
    # Ray Serve's own pydantic models use pydantic-1 idioms; their warnings are not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:ray.*")
