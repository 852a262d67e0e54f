"""Logits rows that work like the documented API: torch tensors that also offer `.to_numpy()`.

Mods written against the public docs call `event.logits.to_numpy()` and
`Tensor.from_numpy(array)` (from `max.driver`, which does not exist here), or use torch methods
such as `.clone()`. `as_logits_row` gives each row a type that supports both, without copying.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = ["LogitsArray", "RowArray", "Tensor", "as_logits_row", "to_numpy"]


class Tensor:
    """Compat shim for `max.driver.Tensor`: `Tensor.from_numpy(a)`, `Tensor.to_numpy(t)`."""

    @staticmethod
    def from_numpy(array: Any) -> np.ndarray:
        return np.asarray(array)

    @staticmethod
    def to_numpy(value: Any) -> np.ndarray:
        return to_numpy(value)


class RowArray(np.ndarray):
    """A 1-D logits row (as SPEC has it) that also takes the original engine's (1, vocab)
    indexing: its users write `logits[0, ids]` or `logits[:, ids]`, which address the same
    entries of the one row. Any other key means what it means for a 1-D array."""

    def _row_key(self, key: Any) -> Any:
        if self.ndim != 1 or not isinstance(key, tuple) or len(key) != 2:
            return key
        lead = key[0]
        if isinstance(lead, slice) and lead == slice(None):
            return key[1]
        if isinstance(lead, (int, np.integer)) and not isinstance(lead, bool) and lead in (0, -1):
            return key[1]
        return key

    def __getitem__(self, key: Any) -> Any:
        return super().__getitem__(self._row_key(key))

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(self._row_key(key), value)


class LogitsArray(RowArray):
    """A numpy logits row that also answers the torch-style `.clone()` and `.to_numpy()`."""

    def clone(self) -> np.ndarray:
        return np.array(self, copy=True)

    def to_numpy(self) -> np.ndarray:
        return np.array(self, copy=True).view(RowArray)


def to_numpy(value: Any) -> np.ndarray:
    """A numpy copy of a torch tensor or array-like (a `RowArray` when it is one row)."""
    if hasattr(value, "detach"):
        out = np.array(value.detach().float().cpu().numpy(), copy=True)
    else:
        out = np.array(value, copy=True)
    return out.view(RowArray) if out.ndim == 1 else out


@functools.cache
def _torch_row_class() -> type:
    import torch

    class LogitsTensor(torch.Tensor):  # type: ignore[misc, unused-ignore]  # Any when torch is absent
        """A torch logits row with `.to_numpy()`; every other op returns a plain tensor."""

        __torch_function__ = torch._C._disabled_torch_function_impl  # type: ignore[assignment, unused-ignore]

        def to_numpy(self) -> np.ndarray:
            return to_numpy(self.as_subclass(torch.Tensor))

    return LogitsTensor


def as_logits_row(row: Any) -> Any:
    """Wrap a 1-D logits row (torch or numpy) so it offers both APIs; shares memory."""
    if hasattr(row, "as_subclass"):
        return row.as_subclass(_torch_row_class())
    return np.asarray(row).view(LogitsArray)
