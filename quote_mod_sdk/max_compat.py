"""A `max.driver` stand-in for bundles written against Modular MAX, used only when MAX is absent.

The seeds' logits example does `from max.driver import Tensor`; here logits rows already offer
`.to_numpy()` and `adjust_logits` takes numpy arrays, so `quote_mod_sdk.tensor.Tensor` serves.
A real `max` package, when importable, always wins: the stand-in never enters `sys.modules`.
"""

from __future__ import annotations

import functools
import importlib.util
import types

from quote_mod_sdk.tensor import Tensor

__all__ = ["standin"]


@functools.cache
def _real_max_installed() -> bool:
    try:
        return importlib.util.find_spec("max") is not None
    except (ImportError, ValueError):
        return False


@functools.cache
def _modules() -> dict[str, types.ModuleType]:
    root = types.ModuleType("max", "Quote's stand-in for Modular MAX (only `max.driver.Tensor`).")
    driver = types.ModuleType("max.driver", "Quote's stand-in for `max.driver`.")
    driver.Tensor = Tensor  # type: ignore[attr-defined]
    root.driver = driver  # type: ignore[attr-defined]
    root.__path__ = []
    return {"max": root, "max.driver": driver}


def standin(name: str) -> types.ModuleType | None:
    """The stand-in module for `max` / `max.driver`, or None (other names, or MAX is installed)."""
    if name not in ("max", "max.driver") or _real_max_installed():
        return None
    return _modules()[name]
