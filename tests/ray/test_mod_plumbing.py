"""How mods travel between ingress and engine replicas, without Ray: the store, the catalog the routes
call, digest checks, and naming a mod across the hop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from quote_mod_sdk import serialize_mod
from quote_mod_sdk.errors import QuoteModError
from quote_serving.mods.store import ModConflictError, UnknownModError
from quote_serving.ray_serve.bundle_store import BundleStore
from quote_serving.ray_serve.catalog import ModCatalog
from quote_serving.ray_serve.mod_cache import DigestMismatchError, ModCache
from quote_serving.ray_serve.mod_refs import EngineMods, TrackedSource
from quote_serving.ray_serve.wire import ModRef
from tests.ray import mods


def bundle(fn: Any = mods.mark, name: str = "mark") -> dict[str, Any]:
    return serialize_mod(fn, name=name)


def test_store_versions_are_immutable_and_identical_content_is_a_no_op() -> None:
    store = BundleStore()
    first, created = store.publish(bundle(), None)
    assert created and first.version == "1"
    assert store.publish(bundle(), None) == (first, False)
    with pytest.raises(ModConflictError):
        store.publish(bundle(mods.slow, "mark"), "1")
    second, _ = store.publish(bundle(mods.slow, "mark"), None)
    assert store.resolve("mark", None).digest == second.digest  # latest moved
    assert store.resolve("mark", "1").pinned and store.resolve("mark", "1").digest == first.digest
    with pytest.raises(UnknownModError):
        store.resolve("nope", None)


def test_catalog_registers_loads_and_resolves_through_the_store() -> None:
    store = BundleStore()
    catalog = ModCatalog(store)
    entry, created = catalog.register(bundle())
    assert created and entry.mod.name == "mark" and entry.mod.max_backtrack == 0
    assert catalog.resolve("mark").mod is entry.mod  # loaded once per digest
    assert [v.name for v in catalog.latest()] == ["mark"]


def test_catalog_refuses_a_bundle_that_does_not_load_before_storing_it() -> None:
    store, broken = BundleStore(), {**bundle(), "source": "raise RuntimeError('no')"}
    with pytest.raises(RuntimeError):
        ModCatalog(store).register(broken)
    assert store.listing() == []


def test_catalog_sees_another_replicas_publish_once_its_latest_entry_is_stale() -> None:
    store = BundleStore()
    here, elsewhere = ModCatalog(store, alias_ttl_s=0.05), ModCatalog(store)
    first, _ = here.register(bundle())
    second, _ = elsewhere.register(bundle(mods.slow, "mark"))
    assert here.resolve("mark").digest == first.digest  # fresh cache entry
    time.sleep(0.1)
    here.resolve("mark")  # stale: answered from cache, refreshed in the background
    deadline = time.monotonic() + 5
    while here.resolve("mark").digest != second.digest:
        assert time.monotonic() < deadline, "the catalog never picked up the new latest version"
        time.sleep(0.02)
    assert here.resolve("mark", "1").digest == first.digest  # pinned versions never move


def test_catalog_blocks_only_off_the_event_loop() -> None:
    catalog = ModCatalog(BundleStore())

    async def register_on_a_loop() -> str:
        entry, _ = catalog.register(bundle())  # a route's synchronous call, on the loop
        return entry.version

    assert asyncio.run(register_on_a_loop()) == "1"


def test_cache_refuses_a_bundle_whose_content_is_not_the_digest_asked_for() -> None:
    store = BundleStore()
    entry, _ = store.publish(bundle(), None)
    with pytest.raises(DigestMismatchError):
        ModCache().load(bundle(mods.slow, "mark"), entry.digest)
    with pytest.raises(QuoteModError):  # it is a mod error: the request fails with the mod's name
        ModCache().load(bundle(mods.slow, "mark"), entry.digest)


def test_engine_loads_exactly_the_version_the_ingress_resolved() -> None:
    store = BundleStore()
    ingress = TrackedSource(ModCatalog(store))
    version, _ = ingress.register(bundle())
    ref = ingress.ref_of(version.mod)
    assert ref == ModRef("mark", "1", version.digest)
    engine = EngineMods(ModCatalog(store))
    assert engine.cached(ref) is None
    loaded = engine.get(ref)
    assert loaded.name == "mark" and engine.cached(ref) is loaded
    with pytest.raises(DigestMismatchError):
        engine.get(ModRef("mark", "1", "sha256:" + "0" * 64))
