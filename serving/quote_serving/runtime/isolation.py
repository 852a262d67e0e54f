"""Where tenants' mods run: the one policy every backend (embedded, Ray Serve, SGLang) applies.

    mode "auto" ─► dev mode: inline (the engine thread, one trusted developer)
                 └ otherwise: process (per-tenant confined workers, `runtime/mod_pool.py`)
    mode "inline" outside dev mode ─► the operator's explicit choice: logged loudly at start
    mode "process" ─► ModWorkerPool started now; every confinement layer it could not apply is named,
                      and unless `weak_ok`, tenants' mods are refused (403, code
                      `mod_isolation_unavailable`) rather than run with less isolation than promised

The result is a loader (bundle → `Mod`) for the replica's mod source; with workers the loader
never runs a bundle's code in this process, and `attach` routes a runtime's mod calls to them.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from quote_mod_sdk.mod import Mod
from quote_mod_sdk.serialize import load_mod
from quote_serving.mods.registry_source import ModRejectedError

__all__ = ["IsolationMode", "ModIsolation", "ModIsolationRefusedError", "resolve_mode", "start_isolation"]

logger = logging.getLogger(__name__)

IsolationMode = Literal["auto", "inline", "process"]
Loader = Callable[[dict[str, Any]], Mod]


class ModIsolationRefusedError(ModRejectedError):
    """This replica cannot confine mods as promised, and its operator did not accept weaker isolation."""


def resolve_mode(mode: str, dev_mode: bool) -> Literal["inline", "process"]:
    """`auto` is inline only for development mode; anything else is taken as given."""
    if mode == "auto":
        return "inline" if dev_mode else "process"
    if mode not in ("inline", "process"):
        raise ValueError(f"mod isolation must be auto, inline or process, not {mode!r}")
    return "process" if mode == "process" else "inline"


@dataclass
class ModIsolation:
    """A replica's mod isolation: its mode, its worker pool (process mode) and its bundle loader."""

    mode: Literal["inline", "process"]
    pool: Any = None  # ModWorkerPool in process mode
    missing_layers: dict[str, str] = field(default_factory=dict)
    weak_ok: bool = False

    @property
    def loader(self) -> Loader:
        if self.pool is None:
            return load_mod
        if self.missing_layers and not self.weak_ok:
            return self._refuse
        loader: Loader = self.pool.load
        return loader

    def attach(self, runtime: Any) -> None:
        """Send `runtime`'s mod calls to the workers of each request's tenant (no-op inline)."""
        if self.pool is None:
            return
        pool = self.pool
        runtime.mod_pool = runtime.mod_calls = pool
        runtime.invoker_for = lambda handle: pool.invoker(handle.request.tenant)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def _refuse(self, bundle: dict[str, Any]) -> Mod:
        layers = ", ".join(f"{name} ({state})" for name, state in self.missing_layers.items())
        raise ModIsolationRefusedError(
            f"this replica cannot confine mods as required (missing: {layers}); it runs no tenant's mod."
            " Its operator may accept weaker isolation with QUOTE_MOD_ISOLATION_WEAK=true"
        )


def start_isolation(
    mode: str,
    *,
    dev_mode: bool,
    tokenizer: Any,
    budget_ms: float,
    memory_mb: int = 2048,
    weak_ok: bool = False,
    calls: bool = True,
) -> ModIsolation:
    """Resolve `mode` and start what it needs. `calls=False`: a replica that only loads bundles for
    their metadata (a Ray ingress), so no worker is started ahead of need."""
    resolved = resolve_mode(mode, dev_mode)
    logger.info("mod isolation: %s%s", resolved, " (auto)" if mode == "auto" else "")
    if resolved == "inline":
        if not dev_mode:
            logger.warning(
                "mods run INLINE, in the serving process, with its secrets, files and network: for one trusted"
                " tenant only. Tenants' untrusted mods need --mod-isolation process (the default outside dev mode)"
            )
        return ModIsolation("inline")
    from quote_serving.runtime.mod_pool import ModWorkerPool

    pool = ModWorkerPool(tokenizer, budget_ms=budget_ms, memory_mb=memory_mb)
    isolation = ModIsolation("process", pool, weak_ok=weak_ok)
    atexit.register(pool.close)
    if not calls:
        return isolation
    layers = pool.start()
    isolation.missing_layers = {name: state for name, state in layers.items() if state != "applied"}
    if isolation.missing_layers and not dev_mode:
        if weak_ok:
            logger.warning("mod workers run with weaker isolation, as the operator accepted (QUOTE_MOD_ISOLATION_WEAK)")
        else:
            logger.error(
                "mod workers lack %s: tenants' mods are refused (QUOTE_MOD_ISOLATION_WEAK=true accepts this)",
                ", ".join(isolation.missing_layers),
            )
    elif isolation.missing_layers:
        isolation.weak_ok = True  # development mode: one trusted developer, named layers are enough
    return isolation
