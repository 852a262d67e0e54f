"""`QuoteIngress`: the OpenAI API deployment — the same FastAPI app as `quote serve`, remote engines.

    HTTP (Serve proxy) ─► ReplicaHeader ─► create_app(ctx) routes (unchanged)
        ctx.runtime = RemoteRuntime  ─► engine deployment (DeploymentHandle, streamed)
        ctx.mods    = TrackedSource  ─► the app's mod store deployment or the registry (mods loaded
                                     once per digest; each remembered as name, version, digest)
        ctx.tokenizer                ─  chat templates, prompt checks, streamed text (no weights here)

The app is built on the replica (`__serve_build_asgi_app__`, after the constructor) because its
routes need this replica's handles and tokenizer; Serve runs its lifespan, which starts and stops
the remote runtime.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from quote_serving.api.app import create_app
from quote_serving.api.context import ServingContext
from quote_serving.ray_serve.args import QuoteAppArgs
from quote_serving.ray_serve.mod_refs import TrackedSource
from quote_serving.ray_serve.model_info import load_model_info
from quote_serving.ray_serve.remote_runtime import RemoteRuntime
from quote_serving.ray_serve.replica_header import ReplicaHeader
from quote_serving.ray_serve.sources import isolation_for, mod_source_for
from quote_serving.settings import ServeSettings

__all__ = ["QuoteIngress"]

logger = logging.getLogger(__name__)


@serve.ingress()
class QuoteIngress:
    """Serve deployment class (ASGI ingress); the app builder applies its options."""

    async def __init__(  # type: ignore[misc]  # Serve awaits an ingress's async constructor
        self, args: QuoteAppArgs, engine: DeploymentHandle[Any], mod_store: DeploymentHandle[Any]
    ) -> None:
        info = await asyncio.to_thread(load_model_info, args.model)
        name = args.served_model_name or info.model_id
        loader = isolation_for(args, None, calls=False).loader  # metadata only: bundles load in workers
        mods = TrackedSource(mod_source_for(args, mod_store, loader))
        runtime = RemoteRuntime(engine, mods, model_name=name, vocab_size=info.vocab_size, tokenizer=info.tokenizer)
        settings = ServeSettings(
            model=args.model,
            served_model_name=name,
            max_batch=args.max_batch,
            mod_budget_ms=args.mod_budget_ms,
            trace_top_k=args.trace_top_k,
            max_request_bytes=args.max_request_bytes,
            max_tokens_default=args.max_tokens_default,
            registry_url=args.registry_url,
            dev_mode=args.dev_mode,
        )
        # ServingContext is typed for the embedded ModRuntime; RemoteRuntime honours the calls the
        # API makes of it (submit, healthy, load, traces, backend.vocab_size, observers, start/stop).
        self._context = ServingContext(
            name, cast(Any, runtime), info.tokenizer, mods, settings, info.context_window, int(time.time())
        )
        logger.info("ingress for %s ready (context window %d)", name, info.context_window)

    def __serve_build_asgi_app__(self) -> FastAPI:
        app: FastAPI = create_app(self._context)
        app.add_middleware(ReplicaHeader)
        return app
