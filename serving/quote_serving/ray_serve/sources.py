"""Which `ModSource` an application's replicas use: the registry, or the application's own store.

Ingress and engine replicas call this with the same arguments, so both resolve mods from the same
place: the registry when `registry_url` is set (signatures verified; the API key comes from the
replica's QUOTE_REGISTRY_API_KEY, never from the Serve config), else the `QuoteModStore`
deployment (development: unsigned bundles over `POST /v1/mods`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray.serve.handle import DeploymentHandle

from quote_mod_sdk.mod import Mod
from quote_mod_sdk.serialize import load_mod
from quote_serving.mods.source import ModSource
from quote_serving.ray_serve.args import QuoteAppArgs
from quote_serving.ray_serve.catalog import ModCatalog
from quote_serving.ray_serve.mod_cache import ModCache
from quote_serving.ray_serve.mod_store import StoreClient
from quote_serving.runtime.isolation import ModIsolation, start_isolation
from quote_serving.settings import ServeSettings

__all__ = ["isolation_for", "mod_source_for"]


def _serve_settings(args: QuoteAppArgs) -> ServeSettings:
    """The mod-related settings as `quote serve` resolves them (dev mode's default included)."""
    return ServeSettings(registry_url=args.registry_url, dev_mode=args.dev_mode)


def isolation_for(args: QuoteAppArgs, tokenizer: Any, *, calls: bool) -> ModIsolation:
    """The replica's mod isolation (`runtime/isolation.py`); `calls=False` on the ingress, which
    loads bundles only for their metadata (in one-shot workers when isolated) and never calls a mod."""
    return start_isolation(
        args.mod_isolation,
        dev_mode=bool(_serve_settings(args).dev_mode),
        tokenizer=tokenizer,
        budget_ms=args.mod_budget_ms,
        memory_mb=args.mod_memory_mb,
        weak_ok=args.mod_isolation_weak,
        calls=calls,
    )


def mod_source_for(
    args: QuoteAppArgs, store: DeploymentHandle[Any], loader: Callable[[dict[str, Any]], Mod] = load_mod
) -> ModSource:
    """`loader`: the replica's `ModIsolation.loader`, so no bundle code runs here when mods are isolated."""
    if args.registry_url is None:
        return ModCatalog(StoreClient(store), ModCache(loader=loader), alias_ttl_s=args.mod_alias_ttl_s)
    from quote_serving.embedded import mod_source

    return mod_source(_serve_settings(args), loader)
