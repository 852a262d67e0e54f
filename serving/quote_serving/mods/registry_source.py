"""Mods from the registry: resolved by (name, ref), verified, loaded once per digest.

Resolution answers are cached for `ttl_s` (so alias moves, yanks and key revocations take effect
within seconds); loaded mods are cached by digest forever (content-addressed, immutable). A
bundle loads only if its signature verifies against the owner's currently trusted keys, unless
the server runs in development mode and the bundle is unsigned.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from quote_mod_sdk.errors import SignatureError
from quote_mod_sdk.mod import Mod
from quote_mod_sdk.serialize import load_mod
from quote_mod_sdk.signing import load_public_key, verify_bundle
from quote_registry.client import RegistryClient, RegistryClientError
from quote_serving.mods.store import ModConflictError, ModVersion, UnknownModError

__all__ = ["ModRejectedError", "RegistryModSource"]

logger = logging.getLogger(__name__)


class ModRejectedError(PermissionError):
    """The bundle's signature does not verify against its owner's trusted keys."""


class RegistryModSource:
    def __init__(
        self,
        client: RegistryClient,
        *,
        dev_mode: bool = False,
        ttl_s: float = 2.0,
        max_loaded: int = 512,
        loader: Callable[[dict[str, Any]], Mod] = load_mod,
    ) -> None:
        self.client = client
        self._load_bundle = loader  # `ModWorkerPool.load` with isolated mods: no mod code runs here
        self.dev_mode = dev_mode
        self.ttl_s = ttl_s
        self.max_loaded = max_loaded
        self._answers: dict[tuple[str, str | None, str | None], tuple[float, dict[str, Any]]] = {}
        self._loaded: OrderedDict[str, Mod] = OrderedDict()
        self._lock = threading.Lock()

    def resolve(self, name: str, ref: str | None = None, *, tenant: str | None = None) -> ModVersion:
        """`tenant`: resolve on that tenant's behalf (needs a service key); None: as this server's key."""
        answer = self._answer(name, ref, tenant)
        mod = self._load(answer)
        created = datetime.fromisoformat(answer["created_at"]).timestamp()
        signed = answer.get("signature") is not None
        return ModVersion(name, answer["version"], answer["digest"], mod, created, answer["bundle"], signed)

    def register(self, bundle: dict[str, Any], version: str | None = None) -> tuple[ModVersion, bool]:
        """`POST /v1/mods` on a registry-backed server is a publish (signed unless the registry is in dev mode)."""
        body = {**bundle, "version": version} if version else dict(bundle)
        try:
            response = self.client._request("POST", "/v1/mods", json=body)
        except RegistryClientError as exc:
            if exc.status == 409:
                raise ModConflictError(exc.message) from exc
            raise
        info = response.json()
        return self.resolve(info["mod"], info["version"]), response.status_code == 201

    def latest(self) -> list[ModVersion]:
        found = []
        for entry in self.client.list_mods():
            try:
                found.append(self.resolve(entry["name"]))
            except (UnknownModError, ModRejectedError):
                continue
        return found

    def _answer(self, name: str, ref: str | None, tenant: str | None) -> dict[str, Any]:
        now, key = time.monotonic(), (name, ref, tenant)
        with self._lock:
            cached = self._answers.get(key)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        try:
            answer = self.client.resolve(name, ref, tenant=tenant)
        except RegistryClientError as exc:
            if exc.status == 404:
                raise UnknownModError(exc.message) from exc
            raise
        with self._lock:
            self._answers[key] = (now, answer)
        return answer

    def _load(self, answer: dict[str, Any]) -> Mod:
        digest = answer["digest"]
        self._verify(answer)  # every time: the set of trusted keys may have changed since loading
        with self._lock:
            mod = self._loaded.get(digest)
            if mod is not None:
                self._loaded.move_to_end(digest)
                return mod
        mod = self._load_bundle(answer["bundle"])
        with self._lock:
            self._loaded[digest] = mod
            while len(self._loaded) > self.max_loaded:
                self._loaded.popitem(last=False)
        logger.info("loaded mod %s %s (%s)", answer["mod"], answer["version"], digest)
        return mod

    def _verify(self, answer: dict[str, Any]) -> None:
        signature = answer.get("signature")
        if signature is None:
            if self.dev_mode:
                return
            raise ModRejectedError(
                f"mod {answer['mod']!r} {answer['version']} is unsigned; this server requires signed mods"
            )
        trusted = {k["key_id"]: k["public_key"] for k in answer.get("trusted_keys", [])}
        public = trusted.get(signature.get("key_id"))
        if public is None:
            raise ModRejectedError(
                f"mod {answer['mod']!r} {answer['version']} is signed by key {signature.get('key_id')}, "
                "which its owner no longer trusts (revoked or unknown)"
            )
        try:
            verify_bundle(answer["bundle"], signature, load_public_key(public))
        except SignatureError as exc:
            raise ModRejectedError(f"mod {answer['mod']!r} {answer['version']}: {exc}") from exc
