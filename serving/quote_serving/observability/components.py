"""The observability parts of one serving app, built once from settings and the environment.

    ServeSettings + OTEL_* ──► Observability.build ──► metrics  (QuoteMetrics, own registry)
                                                     ├► spans    (SpanObserver, if tracing is on)
                                                     └► share    (ShareLinks, if sharing is on)
    Observability.attach(runtime) puts the observers on the runtime; close() flushes spans.

The API layer keeps the result on `app.state.observability` for its routes (`/metrics`, share
links); nothing here imports FastAPI.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from quote_serving.observability.metrics import MetricsObserver, QuoteMetrics
from quote_serving.observability.share import ShareLinks, share_links_from_settings
from quote_serving.observability.tracing import SpanObserver, tracer_provider_from_env
from quote_serving.runtime.observers import RuntimeObserver

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from quote_serving.runtime.mod_runtime import ModRuntime
    from quote_serving.settings import ServeSettings

__all__ = ["Observability"]

logger = logging.getLogger(__name__)


@dataclass
class Observability:
    model: str
    metrics: QuoteMetrics | None = None
    spans: SpanObserver | None = None
    share: ShareLinks | None = None
    observers: list[RuntimeObserver] = field(default_factory=list)
    _owned_provider: TracerProvider | None = None

    @classmethod
    def build(
        cls, settings: ServeSettings, *, model: str, tracer_provider: TracerProvider | None = None
    ) -> Observability:
        """Metrics unless disabled; spans if a provider is given or OTEL_* configure one."""
        owned = None
        if tracer_provider is None:
            tracer_provider = owned = tracer_provider_from_env()
        obs = cls(model=model, _owned_provider=owned)
        if settings.metrics_enabled:
            obs.metrics = QuoteMetrics()
            obs.observers.append(MetricsObserver(obs.metrics, model=model))
        if tracer_provider is not None:
            obs.spans = SpanObserver(tracer_provider, model=model)
            obs.observers.append(obs.spans)
        secret = settings.share_secret.get_secret_value() if settings.share_secret else None
        obs.share = share_links_from_settings(secret, ttl_s=settings.share_ttl_s, dev_mode=bool(settings.dev_mode))
        return obs

    def attach(self, runtime: ModRuntime, *, first: list[RuntimeObserver] | None = None) -> None:
        """Observe `runtime`; `first` run before ours (e.g. ones that fill in request fields)."""
        runtime.observers.extend([*(first or []), *self.observers])
        if self.metrics is not None:
            self.metrics.track_load(self.model, lambda: runtime.load)
            pool, restarts = getattr(runtime, "mod_pool", None), self.metrics.mod_worker_restarts
            if pool is not None:  # isolated mods: every dropped worker counted by reason
                pool.on_restart = lambda reason: restarts.labels(reason).inc()

    def close(self) -> None:
        """Emit and export what is pending; shut down a provider we created."""
        if self.spans is not None:
            self.spans.close()
        if self._owned_provider is not None:
            self._owned_provider.shutdown()
