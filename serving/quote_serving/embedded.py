"""`quote serve`'s single process: model + embedded engine + ModRuntime + local mod store + API."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from quote_mod_sdk.mod import Mod
from quote_mod_sdk.serialize import load_mod
from quote_registry.client import RegistryClient
from quote_serving.api.app import create_app
from quote_serving.api.context import ServingContext
from quote_serving.engine.embedded import EmbeddedBackend
from quote_serving.models.loader import load_model
from quote_serving.mods.registry_source import RegistryModSource
from quote_serving.mods.source import ModSource
from quote_serving.mods.store import LocalModStore
from quote_serving.observability.trace_shipper import ship_traces_from
from quote_serving.runtime.isolation import start_isolation
from quote_serving.runtime.mod_runtime import ModRuntime, RuntimeSettings
from quote_serving.runtime.supervision import exit_process_soon
from quote_serving.settings import ServeSettings

__all__ = ["build_embedded_app", "build_embedded_context"]

logger = logging.getLogger(__name__)


def build_embedded_context(settings: ServeSettings) -> ServingContext:
    loaded = load_model(settings.model, dtype=settings.dtype)
    name = settings.served_model_name or loaded.model_id
    backend = EmbeddedBackend(loaded.model, max_sequences=max(settings.max_batch, 1))
    runtime_settings = RuntimeSettings(max_batch=settings.max_batch, mod_budget_ms=settings.mod_budget_ms)
    runtime = ModRuntime(backend, loaded.tokenizer, model_name=name, settings=runtime_settings)
    runtime.on_fatal = exit_process_soon  # a dead engine loop: not ready, then exit and be restarted
    loader = isolate_mods(runtime, loaded.tokenizer, settings)
    ship_traces_from(runtime.traces, settings, loaded.tokenizer)
    window = int(getattr(loaded.model.config, "max_position_embeddings", 2048) or 2048)
    defaults = sampling_defaults(loaded.model)
    return ServingContext(
        name, runtime, loaded.tokenizer, mod_source(settings, loader), settings, window, int(time.time()), defaults
    )


def sampling_defaults(model: Any) -> dict[str, float]:
    """The temperature/top_p the model's generation_config recommends (only those it sets)."""
    config = getattr(model, "generation_config", None)
    given = config.to_diff_dict() if config is not None else {}
    return {k: float(given[k]) for k in ("temperature", "top_p") if isinstance(given.get(k), (int, float))}


def isolate_mods(runtime: ModRuntime, tokenizer: Any, settings: ServeSettings) -> Callable[[dict[str, Any]], Mod]:
    """Start the replica's mod isolation (`runtime/isolation.py`) and route `runtime`'s mod calls
    through it; the loader to hand the mod source."""
    isolation = start_isolation(
        settings.mod_isolation,
        dev_mode=bool(settings.dev_mode),
        tokenizer=tokenizer,
        budget_ms=settings.mod_budget_ms,
        memory_mb=settings.mod_memory_mb,
        weak_ok=settings.mod_isolation_weak,
    )
    isolation.attach(runtime)
    return isolation.loader


def mod_source(settings: ServeSettings, loader: Callable[[dict[str, Any]], Mod] = load_mod) -> ModSource:
    """The registry when one is configured, else the in-memory store of `POST /v1/mods` bundles."""
    if settings.dev_mode:
        logger.warning("development mode: unsigned mods are accepted; use a registry with signed mods in production")
    if settings.registry_url is None:
        return LocalModStore(loader)
    key = settings.registry_api_key.get_secret_value() if settings.registry_api_key else ""
    logger.info("resolving mods from the registry at %s", settings.registry_url)
    return RegistryModSource(
        RegistryClient(settings.registry_url, key), dev_mode=bool(settings.dev_mode), loader=loader
    )


def build_embedded_app(settings: ServeSettings) -> FastAPI:
    return create_app(build_embedded_context(settings))
