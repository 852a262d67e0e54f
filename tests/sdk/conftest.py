"""Helpers for SDK tests: load the seed example mods as modules by file path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SEEDS = Path(__file__).resolve().parents[2] / "examples" / "seeds"


def load_seed(name: str) -> ModuleType:
    """Import examples/seeds/<name>.py fresh (module-level state reset) under a unique name."""
    path = SEEDS / f"{name}.py"
    module_name = f"seed_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # so serialize_mod can read its source
    spec.loader.exec_module(module)
    return module
