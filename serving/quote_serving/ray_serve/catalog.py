"""`ModCatalog`: the `ModSource` the routes call, over the application's shared bundle store.

The routes call `ctx.mods.resolve(name, ref)` synchronously on the event loop, so answers stay
local where they can:

    resolve(name, ref) ─► entry cache ─ pinned, or fresh ───────────────► ModVersion (Mod loaded once per digest)
                              │ stale (older than alias_ttl_s): answer it, re-resolve in the background
                              └ miss: ask the store once (this loop waits one round trip)

Pinned versions never change, so they never expire; `latest` may move, so it is at most
`alias_ttl_s` (plus one round trip) old on an ingress that did not publish the new version.
`register` loads the bundle here first, so a mod that does not even import is refused before it
is stored. The same class serves engine replicas, which resolve pinned versions only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from quote_mod_sdk.serialize import bundle_digest, validate_bundle
from quote_serving.api.errors import QuoteAPIError
from quote_serving.mods.store import ModVersion, UnknownModError
from quote_serving.ray_serve.bundle_store import BundleStorePort, ResolvedMod
from quote_serving.ray_serve.mod_cache import ModCache

__all__ = ["ModCatalog", "ModStoreUnavailableError"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


class ModStoreUnavailableError(QuoteAPIError):
    """The mod store did not answer in time; the request may be retried."""

    status_code = 503
    error_type = "server_error"


@dataclass(frozen=True)
class _Cached:
    entry: ResolvedMod
    expires: float


class ModCatalog:
    """A `quote_serving.mods.source.ModSource` (development: unsigned bundles) over a bundle store."""

    dev_mode = True  # bundles POSTed to the application's store are unsigned by design

    def __init__(
        self,
        store: BundleStorePort,
        cache: ModCache | None = None,
        *,
        alias_ttl_s: float = 1.0,
        timeout_s: float = 10.0,
    ) -> None:
        self._store, self._cache = store, cache or ModCache()
        self._ttl, self._timeout = alias_ttl_s, timeout_s
        self._entries: dict[tuple[str, str | None], _Cached] = {}
        self._refreshing: set[tuple[str, str | None]] = set()
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="quote-mod-store")

    # -- the ModSource protocol -----------------------------------------------------------------
    def register(self, bundle: dict[str, Any], version: str | None = None) -> tuple[ModVersion, bool]:
        spec = validate_bundle(bundle)
        mod = self._cache.load(spec, bundle_digest(spec))
        entry, created = self._call(self._store.publish, spec, version)
        self._remember((entry.name, entry.version), replace(entry, pinned=True))
        if created:
            self._remember((entry.name, None), entry)
        return ModVersion(entry.name, entry.version, entry.digest, mod, entry.created, spec), created

    def resolve(self, name: str, ref: str | None = None, *, tenant: str | None = None) -> ModVersion:
        # The development store's bundles have no owner (like LocalModStore): `tenant` changes nothing.
        return self._loaded(self._lookup(name, None if ref in (None, "latest") else ref))

    def latest(self) -> list[ModVersion]:
        return [self._loaded(entry) for entry in self._call(self._store.listing)]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- resolution -----------------------------------------------------------------------------
    def _lookup(self, name: str, ref: str | None) -> ResolvedMod:
        key = (name, ref)
        with self._lock:
            cached = self._entries.get(key)
        if cached is None:
            entry = self._call(self._store.resolve, name, ref)
            self._remember(key, entry)
            return entry
        if not cached.entry.pinned and time.monotonic() >= cached.expires:
            self._refresh_in_background(key)
        return cached.entry

    def _loaded(self, entry: ResolvedMod) -> ModVersion:
        bundle = entry.bundle
        mod = self._cache.get(entry.digest)
        if mod is None:
            bundle = bundle or self._call(self._store.fetch, entry.digest)
            mod = self._cache.load(bundle, entry.digest)
        return ModVersion(entry.name, entry.version, entry.digest, mod, entry.created, bundle or {})

    def _remember(self, key: tuple[str, str | None], entry: ResolvedMod) -> None:
        with self._lock:
            self._entries[key] = _Cached(entry, time.monotonic() + self._ttl)

    def _refresh_in_background(self, key: tuple[str, str | None]) -> None:
        with self._lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)
        self._pool.submit(self._refresh, key)

    def _refresh(self, key: tuple[str, str | None]) -> None:
        try:
            self._remember(key, self._store.resolve(*key))
        except UnknownModError:
            with self._lock:
                self._entries.pop(key, None)  # gone: the next request gets the 404
        except Exception:  # a background refresh must not die: the stale entry stays in service
            logger.warning("refreshing mod %s@%s failed; keeping the cached version", *key, exc_info=True)
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store call; on an event loop, from a worker thread (Serve forbids blocking calls there)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return fn(*args)
        try:
            return self._pool.submit(fn, *args).result(timeout=self._timeout)
        except concurrent.futures.TimeoutError as exc:
            raise ModStoreUnavailableError(
                f"the mod store did not answer within {self._timeout:g}s; retry the request", code="mod_store_timeout"
            ) from exc
