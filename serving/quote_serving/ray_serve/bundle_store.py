"""The development mod store of a Ray application: `quote_serving.mods.bundles.BundleStore`
(the same rules as `quote serve`'s store, data only), and the port the ingress's catalog uses to
reach it, in this process or in the shared `QuoteModStore` replica (mod_store.py). The ingress
loads (and so vets) a bundle before publishing it; each engine replica loads what it serves.
"""

from __future__ import annotations

from typing import Any, Protocol

from quote_serving.mods.bundles import BundleStore, ResolvedMod

__all__ = ["BundleStore", "BundleStorePort", "ResolvedMod"]


class BundleStorePort(Protocol):
    """What the ingress's catalog needs of a store: `BundleStore` itself, or a client of a remote one."""

    def publish(self, bundle: dict[str, Any], version: str | None) -> tuple[ResolvedMod, bool]: ...
    def resolve(self, name: str, ref: str | None) -> ResolvedMod: ...
    def fetch(self, digest: str) -> dict[str, Any]: ...
    def listing(self) -> list[ResolvedMod]: ...
