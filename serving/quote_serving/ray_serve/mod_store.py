"""The application's development mod store as a Serve deployment, and the client replicas use.

    POST /v1/mods on any ingress replica ─► StoreClient.publish ─► QuoteModStore (one replica)
    ingress / engine ModCatalog          ─► StoreClient         ─► QuoteModStore

One replica holds every bundle (`BundleStore`), so all replicas of the application see the same
mods. Its contents live as long as the application; production points replicas at the registry
instead (`registry_url`), and this deployment then stays empty.
"""

from __future__ import annotations

from typing import Any

from ray.exceptions import RayTaskError
from ray.serve.handle import DeploymentHandle

from quote_mod_sdk.errors import QuoteModError
from quote_serving.mods.store import ModConflictError, UnknownModError
from quote_serving.ray_serve.bundle_store import BundleStore, ResolvedMod

__all__ = ["QuoteModStore", "StoreClient"]

# Errors a store raises on purpose: they reach callers as themselves, not wrapped in Ray's traceback.
_STORE_ERRORS = (UnknownModError, ModConflictError, QuoteModError)


class QuoteModStore:
    """Serve deployment class: a `BundleStore` shared by the application's replicas."""

    def __init__(self) -> None:
        self._store = BundleStore()

    def publish(self, bundle: dict[str, Any], version: str | None) -> tuple[ResolvedMod, bool]:
        return self._store.publish(bundle, version)

    def resolve(self, name: str, ref: str | None) -> ResolvedMod:
        return self._store.resolve(name, ref)

    def fetch(self, digest: str) -> dict[str, Any]:
        return self._store.fetch(digest)

    def listing(self) -> list[ResolvedMod]:
        return self._store.listing()


class StoreClient:
    """`BundleStorePort` over a `QuoteModStore` handle. Blocking: call it from a worker thread."""

    def __init__(self, handle: DeploymentHandle[Any], timeout_s: float = 10.0) -> None:
        self._handle, self._timeout = handle, timeout_s

    def publish(self, bundle: dict[str, Any], version: str | None) -> tuple[ResolvedMod, bool]:
        result: tuple[ResolvedMod, bool] = self._call("publish", bundle, version)
        return result

    def resolve(self, name: str, ref: str | None) -> ResolvedMod:
        result: ResolvedMod = self._call("resolve", name, ref)
        return result

    def fetch(self, digest: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("fetch", digest)
        return result

    def listing(self) -> list[ResolvedMod]:
        result: list[ResolvedMod] = self._call("listing")
        return result

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._handle, method).remote(*args).result(timeout_s=self._timeout)
        except RayTaskError as exc:
            if isinstance(exc.cause, _STORE_ERRORS):
                raise exc.cause from None
            raise
