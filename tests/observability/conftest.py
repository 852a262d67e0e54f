"""Servers for the observability tests: one in-process app whose spans go to an in-memory
exporter, and one real `quote serve` subprocess exporting OTLP/HTTP to a receiver in the test."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.observability.support import InProcessServer, OTLPReceiver, TenantFromHeader, register_mods
from tests.serving.conftest import Server, start_server


@dataclass
class Local:
    server: InProcessServer
    ctx: Any
    exporter: InMemorySpanExporter

    @property
    def observability(self) -> Any:
        return self.server.app.state.observability

    def finished_spans(self) -> list[Any]:
        assert self.observability.spans.flush()
        return list(self.exporter.get_finished_spans())


@dataclass
class Served:
    server: Server
    receiver: OTLPReceiver


@pytest.fixture(scope="session")
def local() -> Iterator[Local]:
    from quote_serving.api.app import create_app
    from quote_serving.embedded import build_embedded_context
    from quote_serving.settings import ServeSettings

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ctx = build_embedded_context(ServeSettings(max_batch=8))
    app = create_app(ctx, tracer_provider=provider)
    app.add_middleware(TenantFromHeader)
    server = InProcessServer(app).start()
    register_mods(server.base_url)
    yield Local(server, ctx, exporter)
    server.stop()


@pytest.fixture(scope="session")
def http_local(local: Local) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local.server.base_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`quote serve` configured only by the standard OTEL_* variables."""
    receiver = OTLPReceiver()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": "quote-e2e",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    server = start_server(tmp_path_factory.mktemp("served") / "serve.log", "--max-batch", "8", env=env)
    register_mods(server.base_url)
    yield Served(server, receiver)
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
    receiver.close()


@pytest.fixture(scope="session")
def http_served(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.server.base_url, timeout=60) as client:
        yield client
