"""`QuoteKServeModel`: KServe's model lifecycle (load, health, stop) around the embedded engine.

KServe's `ModelServer` owns the process (HTTP server, signals, `/v2/health/*`, `/v1/models/<name>`
readiness, `/metrics`); this model owns the `ServingContext` (model, ModRuntime, mod store) that
the OpenAI app mounted next to KServe's routes serves. The app is mounted, so its own lifespan
does not run: `load` starts the engine thread and `stop` (KServe unloads models on shutdown)
stops it and flushes the app's observability.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from kserve import Model

from quote_serving.api.app import create_app
from quote_serving.api.context import ServingContext
from quote_serving.embedded import build_embedded_context
from quote_serving.settings import ServeSettings

__all__ = ["QuoteKServeModel"]

logger = logging.getLogger(__name__)


class QuoteKServeModel(Model):  # type: ignore[misc]  # kserve ships no type hints
    """One served base model; KServe knows it as `name` (its `--model_name`)."""

    def __init__(self, name: str, settings: ServeSettings) -> None:
        super().__init__(name)
        self.settings = settings
        self.context: ServingContext | None = None
        self.app: FastAPI | None = None

    def load(self) -> bool:
        self.context = build_embedded_context(self.settings)
        self.context.runtime.start()
        self.ready = True
        logger.info("KServe model %s serves %s", self.name, self.context.model_name)
        return True

    def openai_app(self) -> FastAPI:
        """The OpenAI app around this model's context (after `load`), to mount next to KServe's routes."""
        if self.context is None:
            raise RuntimeError("load() the model before building its app")
        self.app = create_app(self.context)
        return self.app

    async def healthy(self) -> bool:
        return bool(self.ready and self.context is not None and self.context.runtime.healthy)

    def stop(self) -> None:
        if self.context is not None:
            self.context.runtime.stop()
        if self.app is not None:
            self.app.state.observability.close()
        self.ready = False
