"""`QuoteEngine`: the engine deployment; one replica = one model copy, its ModRuntime, its mods.

    EngineRequest (from the ingress, via a DeploymentHandle stream)
      ─► mod: cached by digest, or resolved (name, version) from the application's mod source,
         checked against the ingress's digest, loaded once
      ─► RequestHandle ─► ModRuntime.submit (continuous batching with every other request here)
      ─► snapshots, coalesced to at most one per `stream_interval_s` ─► EngineUpdate stream
    the stream is cancelled (client gone, ingress cut off) ─► the request leaves the batch

`args.engine` picks the runtime: `embedded` (torch, this process) or `sglang` (SGLang's scheduler in
the engine thread, one GPU per replica, Quote's hooks from the `sglang.srt.plugins` entry point).
sglang is imported only by an sglang replica when it starts, so every machine imports this module; a
replica that cannot run SGLang fails with `SGLangUnavailableError` saying what is missing.

Serve scales replicas with `autoscaling_config`, calls `check_health` (a dead engine thread marks
the replica unhealthy and Serve replaces it) and drains a stopping replica: no new requests, the
running ones finish (up to `graceful_shutdown_timeout_s`), then `__del__` stops the engine thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Any

import torch
from ray import serve
from ray.serve.handle import DeploymentHandle

from quote_mod_sdk.mod import Mod
from quote_serving.engine.embedded import EmbeddedBackend
from quote_serving.models.loader import load_model
from quote_serving.ray_serve.args import QuoteAppArgs
from quote_serving.ray_serve.mod_refs import EngineMods
from quote_serving.ray_serve.sources import isolation_for, mod_source_for
from quote_serving.ray_serve.wire import EngineRequest, EngineUpdate, ModRef, to_generation_request
from quote_serving.runtime.isolation import ModIsolation
from quote_serving.runtime.mod_runtime import ModRuntime, RuntimeSettings
from quote_serving.runtime.requests import RequestHandle, Snapshot

__all__ = ["EngineUnhealthyError", "QuoteEngine", "coalesced", "engine_runtime", "keep_quote_plugin"]

QUOTE_PLUGIN = "quote"  # the name of Quote's `sglang.srt.plugins` entry point (pyproject.toml)

logger = logging.getLogger(__name__)


class EngineUnhealthyError(RuntimeError):
    """Raised by `check_health` when the engine thread has stopped; Serve replaces the replica."""


class QuoteEngine:
    """Serve deployment class; the app builder applies its options (autoscaling, resources)."""

    def __init__(self, args: QuoteAppArgs, mod_store: DeploymentHandle[Any]) -> None:
        torch.set_num_threads(args.engine_threads)  # replicas sharing a node must not share cores
        isolations: list[ModIsolation] = []

        def isolate(runtime: ModRuntime) -> None:  # before the engine starts: its first step already isolated
            isolations.append(isolation_for(args, runtime.tokenizer, calls=True))
            isolations[0].attach(runtime)

        self._runtime = engine_runtime(args, isolate)
        self._isolation = isolations[0]
        name = self._runtime.model_name
        self._mods = EngineMods(mod_source_for(args, mod_store, self._isolation.loader))
        self._interval = args.stream_interval_s
        context = serve.get_replica_context()
        self.replica = f"{context.app_name}#{context.deployment}#{context.replica_tag}"
        logger.info(
            "engine replica %s serves %s on the %s engine with %d torch threads",
            self.replica,
            name,
            args.engine,
            args.engine_threads,
        )

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineUpdate]:
        """Run one request; streams its snapshots. Cancelling the stream drops the request."""
        try:
            mod = await self._mod(request.mod)
        except Exception as exc:  # a mod's import-time code may raise anything: that is its request's error
            logger.warning("request %s: mod %s failed to load: %s", request.request_id, request.mod, exc)
            yield EngineUpdate(_mod_load_failed(request, exc), self.replica)
            return
        handle = RequestHandle(to_generation_request(request, mod), asyncio.get_running_loop())
        self._runtime.submit(handle)
        try:
            async for snapshot in coalesced(handle, self._interval):
                if snapshot.finished:
                    yield EngineUpdate(snapshot, self.replica, handle.trace, handle.timings)
                else:
                    yield EngineUpdate(snapshot, self.replica)
        finally:
            if not handle.snapshot.finished:
                handle.cancel()

    def check_health(self) -> None:
        if not self._runtime.healthy:
            raise EngineUnhealthyError(f"engine replica {self.replica}: the engine thread has stopped")

    def __del__(self) -> None:
        runtime = getattr(self, "_runtime", None)  # absent when __init__ failed
        if runtime is not None:
            runtime.stop()
        isolation = getattr(self, "_isolation", None)
        if isolation is not None:
            isolation.close()

    async def _mod(self, ref: ModRef | None) -> Mod | None:
        if ref is None:
            return None
        return self._mods.cached(ref) or await asyncio.to_thread(self._mods.get, ref)


def engine_runtime(args: QuoteAppArgs, prepare: Callable[[ModRuntime], None] | None = None) -> ModRuntime:
    """The replica's started runtime for `args.engine`; raises with the cause when it cannot start.
    `prepare` runs on the built runtime before it starts (e.g. routing its mod calls to workers)."""
    settings = RuntimeSettings(max_batch=args.max_batch, mod_budget_ms=args.mod_budget_ms)
    if args.engine == "sglang":
        return _sglang_runtime(args, settings, prepare)
    loaded = load_model(args.model, device=args.device, dtype=args.dtype)
    backend = EmbeddedBackend(loaded.model, max_sequences=args.max_batch)
    name = args.served_model_name or loaded.model_id
    runtime = ModRuntime(backend, loaded.tokenizer, model_name=name, settings=settings)
    if prepare is not None:
        prepare(runtime)
    runtime.start()
    return runtime


def _sglang_runtime(
    args: QuoteAppArgs, settings: RuntimeSettings, prepare: Callable[[ModRuntime], None] | None
) -> ModRuntime:
    from quote_serving.engine.sglang import SGLangUnavailableError, build_runtime, unavailable_reason

    keep_quote_plugin(os.environ)
    reason = unavailable_reason()  # before anything imports sglang: no ImportError traceback on CPU nodes
    if reason is not None:
        raise SGLangUnavailableError(f"engine: sglang cannot start on this replica: {reason}")
    runtime = build_runtime(
        args.model, model_name=args.served_model_name, engine=args.sglang_settings(), runtime=settings
    )
    if prepare is not None:
        prepare(runtime)
    runtime.start()  # blocks until SGLang is ready; SGLangStartError carries the cause
    return runtime


def keep_quote_plugin(environ: MutableMapping[str, str]) -> None:
    """Keep Quote's plugin in SGLang's allow-list, for this process and every process SGLang starts.

    SGLang's `load_plugins` runs every `sglang.srt.plugins` entry point unless `SGLANG_PLUGINS` names
    the ones to run; a node or runtime env that sets it without `quote` would leave the hooks out.
    """
    allowed = environ.get("SGLANG_PLUGINS")
    if allowed is None:
        return
    names = [name.strip() for name in allowed.split(",") if name.strip()]
    if QUOTE_PLUGIN not in names:
        environ["SGLANG_PLUGINS"] = ",".join([*names, QUOTE_PLUGIN])


async def coalesced(handle: RequestHandle, interval: float) -> AsyncIterator[Snapshot]:
    """The handle's snapshots: the first and the final at once, in between at most one per `interval`.

    Each crosses the Ray hop, so a fast engine would otherwise send one per step. A merged snapshot
    keeps the lowest `low_water` of those it replaces: backtracks are never hidden from the cursor.
    """
    loop = asyncio.get_running_loop()
    pending: Snapshot | None = None
    due = loop.time()
    while True:
        timeout = None if pending is None else max(0.0, due - loop.time())
        try:
            snapshot = await asyncio.wait_for(handle.next_snapshot(), timeout)
        except asyncio.TimeoutError:
            snapshot = None
        if snapshot is not None:
            pending = snapshot if pending is None else _merged(pending, snapshot)
            if not (snapshot.finished or loop.time() >= due):
                continue
        assert pending is not None
        yield pending
        if pending.finished:
            return
        pending, due = None, loop.time() + interval


def _merged(older: Snapshot, newer: Snapshot) -> Snapshot:
    return dataclasses.replace(newer, low_water=min(older.low_water, newer.low_water))


def _mod_load_failed(request: EngineRequest, exc: Exception) -> Snapshot:
    name = request.mod.name if request.mod else None
    return Snapshot(
        finished=True,
        finish_reason="error",
        error=f"mod {name!r} could not be loaded on the engine replica: {type(exc).__name__}: {exc}",
        error_kind="mod_load_failed",
        prompt_tokens=len(request.prompt_tokens),
        text="",
    )
