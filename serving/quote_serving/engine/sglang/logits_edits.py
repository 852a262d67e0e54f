"""Per-step logits edits for a whole batch, applied on the device in a few kernels and no host sync.

Mods answer `ForwardPass` one request at a time, but the rows live in one `[batch, vocab]` device
tensor that the sampler reads right after. Copying or masking rows one by one would cost a kernel
launch each (and, with indices built on the host, a synchronising copy each); instead the step
collects every request's edit here, then `apply` writes them all at once:

    replace_row(i, row)            dense: a whole new row            → one `index_copy_`
    set_values(i, ids, values)     sparse: a few (token, value) pairs → one `index_put_`
    mask_row(i, allowed)           keep only `allowed` (else -inf)   → one masked `index_put_`
    greedy_row(i)                  keep only the row's argmax        → computed on the device

in that order (a row may carry several kinds: dense first, then sparse, then masks). Host-side
indices reach the device through pinned memory with `non_blocking=True`, which the CUDA caching
host allocator keeps alive until the copy has run, so nothing here waits for the GPU.

A mod that edits its `event.logits` view in place and returns it needs no entry at all: the
caller detects the shared storage (`shares_row`) and the batch tensor already holds the edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["LogitsEditBatch", "shares_row", "to_device_row"]

NEG_INF = float("-inf")


def shares_row(candidate: Any, batch: torch.Tensor, row: int) -> bool:
    """True when `candidate` is (a view of) row `row` of `batch`: an in-place edit, nothing to copy."""
    if not isinstance(candidate, torch.Tensor) or candidate.device != batch.device:
        return False
    view = batch[row]
    return (
        candidate.data_ptr() == view.data_ptr()
        and candidate.shape == view.shape
        and candidate.stride() == view.stride()
        and candidate.dtype == view.dtype
    )


def to_device_row(row: Any, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A 1-D logits row (torch or numpy) as a tensor on `device`, copied without a host sync."""
    if isinstance(row, torch.Tensor):
        tensor = row.reshape(-1)
        if tensor.device.type == "cpu" and device.type == "cuda":
            tensor = tensor.pin_memory()
    else:
        tensor = torch.from_numpy(np.ascontiguousarray(np.asarray(row), dtype=np.float32).reshape(-1))
        if device.type == "cuda":
            tensor = tensor.pin_memory()
    return tensor.to(device=device, dtype=dtype, non_blocking=True)


def _indices(values: Sequence[int], device: torch.device) -> torch.Tensor:
    host = torch.tensor(list(values), dtype=torch.int64)
    if device.type == "cuda":
        host = host.pin_memory()
    return host.to(device, non_blocking=True)


@dataclass
class LogitsEditBatch:
    """The edits of one step, keyed by batch row; `apply` writes them into the batch tensor."""

    vocab_size: int
    _dense: dict[int, Any] = field(default_factory=dict)
    _sparse_rows: list[int] = field(default_factory=list)
    _sparse_cols: list[int] = field(default_factory=list)
    _sparse_values: list[float] = field(default_factory=list)
    _masks: dict[int, Any] = field(default_factory=dict)
    _greedy: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._dense) + len(set(self._sparse_rows)) + len(self._masks) + len(self._greedy)

    # ----- collecting ---------------------------------------------------------------------------
    def replace_row(self, row: int, logits: Any) -> None:
        """Row `row` becomes `logits` (a vocab-sized torch tensor or numpy array)."""
        size = int(np.prod(logits.shape)) if hasattr(logits, "shape") else len(logits)
        if size != self.vocab_size:
            raise ValueError(f"a replacement row has {size} logits, expected {self.vocab_size}")
        self._dense[row] = logits

    def set_values(self, row: int, token_ids: Sequence[int], values: Sequence[float] | float) -> None:
        """logits[row, token_ids[k]] = values[k] (one value for all ids when a float is given)."""
        ids = [self._token(t) for t in token_ids]
        vals = [float(values)] * len(ids) if isinstance(values, (int, float)) else [float(v) for v in values]
        if len(vals) != len(ids):
            raise ValueError(f"set_values got {len(ids)} token ids but {len(vals)} values")
        self._sparse_rows.extend([row] * len(ids))
        self._sparse_cols.extend(ids)
        self._sparse_values.extend(vals)

    def mask_row(self, row: int, allowed: Any) -> None:
        """Only `allowed` tokens stay (a bool tensor of vocab size, or a list of token ids)."""
        if isinstance(allowed, torch.Tensor) and allowed.dtype == torch.bool:
            if allowed.numel() != self.vocab_size:
                raise ValueError(f"a mask has {allowed.numel()} entries, expected {self.vocab_size}")
            self._masks[row] = allowed.reshape(-1)
        else:
            self._masks[row] = [self._token(t) for t in allowed]

    def greedy_row(self, row: int) -> None:
        """Only the row's current argmax stays (temperature 0 for one step), decided on the device."""
        self._greedy.append(row)

    # ----- applying -----------------------------------------------------------------------------
    def apply(self, logits: torch.Tensor) -> None:
        """Write every collected edit into `logits` [batch, vocab] in place."""
        if logits.ndim != 2 or logits.shape[1] != self.vocab_size:
            raise ValueError(f"expected logits [batch, {self.vocab_size}], got {list(logits.shape)}")
        self._apply_dense(logits)
        self._apply_sparse(logits)
        self._apply_masks(logits)
        self._apply_greedy(logits)

    def _apply_dense(self, logits: torch.Tensor) -> None:
        if not self._dense:
            return
        rows = sorted(self._dense)
        stacked = torch.stack([to_device_row(self._dense[r], logits.device, logits.dtype) for r in rows])
        logits.index_copy_(0, _indices(rows, logits.device), stacked)

    def _apply_sparse(self, logits: torch.Tensor) -> None:
        if not self._sparse_rows:
            return
        values = torch.tensor(self._sparse_values, dtype=logits.dtype)
        if logits.device.type == "cuda":
            values = values.pin_memory()
        index = (_indices(self._sparse_rows, logits.device), _indices(self._sparse_cols, logits.device))
        logits.index_put_(index, values.to(logits.device, non_blocking=True))

    def _apply_masks(self, logits: torch.Tensor) -> None:
        if not self._masks:
            return
        rows = sorted(self._masks)
        keep = torch.stack([self._mask_tensor(self._masks[r], logits.device) for r in rows])
        row_index = _indices(rows, logits.device)
        current = logits.index_select(0, row_index)
        logits.index_copy_(0, row_index, current.masked_fill(~keep, NEG_INF))

    def _apply_greedy(self, logits: torch.Tensor) -> None:
        if not self._greedy:
            return
        row_index = _indices(sorted(set(self._greedy)), logits.device)
        current = logits.index_select(0, row_index)
        best = current.argmax(dim=-1, keepdim=True)
        onehot = torch.full_like(current, NEG_INF).scatter_(1, best, current.gather(1, best))
        logits.index_copy_(0, row_index, onehot)

    def _mask_tensor(self, allowed: Any, device: torch.device) -> torch.Tensor:
        if isinstance(allowed, torch.Tensor):
            return allowed.to(device, non_blocking=True)
        keep = torch.zeros(self.vocab_size, dtype=torch.bool, device=device)
        if allowed:
            keep[_indices(allowed, device)] = True
        return keep

    def _token(self, token: int) -> int:
        token = int(token)
        if not 0 <= token < self.vocab_size:
            raise ValueError(f"token id {token} is outside the vocabulary of size {self.vocab_size}")
        return token
