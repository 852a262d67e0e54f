"""Which `ModSource` an application's replicas use: the registry, or the application's own store.

Ingress and engine replicas call this with the same arguments, so both resolve mods from the same
place: the registry when `registry_url` is set (signatures verified; the API key comes from the
replica's QUOTE_REGISTRY_API_KEY, never from the Serve config), else the `QuoteModStore`
deployment (development: unsigned bundles over `POST /v1/mods`).
"""

from __future__ import annotations

from typing import Any

from ray.serve.handle import DeploymentHandle

from quote_serving.mods.source import ModSource
from quote_serving.ray_serve.args import QuoteAppArgs
from quote_serving.ray_serve.catalog import ModCatalog
from quote_serving.ray_serve.mod_store import StoreClient
from quote_serving.settings import ServeSettings

__all__ = ["mod_source_for"]


def mod_source_for(args: QuoteAppArgs, store: DeploymentHandle[Any]) -> ModSource:
    if args.registry_url is None:
        return ModCatalog(StoreClient(store), alias_ttl_s=args.mod_alias_ttl_s)
    from quote_serving.embedded import mod_source

    return mod_source(ServeSettings(registry_url=args.registry_url, dev_mode=args.dev_mode))
