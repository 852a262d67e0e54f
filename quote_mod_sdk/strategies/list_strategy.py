"""The original SDK's module path for `ListStrategy` (the runtime protocol lives in `runtime.py`)."""

from .runtime import ListStrategy

__all__ = ["ListStrategy"]
