"""Shared-memory logits rows between the engine and one mod worker.

A ForwardPass row is vocab-sized float32 (~600 KB on a 150k vocabulary): piping it to the worker
and an edited copy back would cost two pipe copies each way per request per step. Instead each
worker gets one sealed memfd with `pairs` pairs of slots, mapped by both processes:

    engine: put_input(row, k) ──► [ IN₀ … INₖ | OUT₀ … OUTₖ ] ◄── worker: put_output(edited row, k)
            take_output(n, k) ◄──┘ (one memfd, size fixed and sealed) └──► input_view(n, k): zero-copy

Calls to one worker are pipelined (`runtime/mod_calls.py`), so each ForwardPass in flight holds
a pair of its own (`k`, chosen by the engine; a call that finds none free pipes its row). The
frame on the pipe carries only the header (`row`: how many floats are in INₖ, `slot`: k;
`logits: "slot"` and `n` in the answer). The worker can scribble on the region at any time, so the engine never
reads it in place: `take_output` copies exactly the number of floats the engine expects, once,
and values are validated afterwards (`rows.checked_row`). The file is sealed against shrinking
and growing (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`), so a hostile worker cannot truncate
it under the engine's mapping (which would raise SIGBUS in the engine).
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
from typing import Any

import numpy as np

__all__ = ["DEFAULT_CAPACITY", "RowSlots"]

DEFAULT_CAPACITY = 1 << 18  # floats per slot: 1 MiB, enough for every vocabulary we serve (≤ 262,144)
DEFAULT_PAIRS = 4  # ForwardPass calls in flight on one worker with a row in shared memory
_F32 = 4


class RowSlots:
    """`pairs` IN and OUT float32 slots of `capacity` floats each, in one shared mapping."""

    def __init__(self, fd: int, capacity: int, pairs: int = DEFAULT_PAIRS) -> None:
        self.fd = fd
        self.capacity = capacity
        self.pairs = pairs
        size = 2 * pairs * capacity
        self._map = mmap.mmap(fd, size * _F32, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        floats = np.frombuffer(self._map, dtype=np.float32, count=size)
        self._ins = [floats[k * capacity : (k + 1) * capacity] for k in range(pairs)]
        self._outs = [floats[(pairs + k) * capacity : (pairs + k + 1) * capacity] for k in range(pairs)]
        self._in, self._out = self._ins[0], self._outs[0]

    @classmethod
    def create(cls, capacity: int = DEFAULT_CAPACITY, pairs: int = DEFAULT_PAIRS) -> RowSlots:
        """The engine's side: a new sealed memfd (inheritable only via `pass_fds`)."""
        fd = os.memfd_create("quote-mod-rows", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, 2 * pairs * capacity * _F32)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
            return cls(fd, capacity, pairs)
        except BaseException:
            os.close(fd)
            raise

    def close_fd(self) -> None:
        """Drop the descriptor once the worker has inherited it; the mapping stays."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def close(self) -> None:
        self.close_fd()
        self._in = self._out = np.empty(0, dtype=np.float32)  # drop the exports before unmapping
        self._ins, self._outs = [], []
        with contextlib.suppress(BufferError):  # a view still lives somewhere; the GC unmaps then
            self._map.close()

    # ----- engine side ------------------------------------------------------------------------
    def fits(self, n: int) -> bool:
        return 0 < n <= self.capacity

    def has_pair(self, k: object) -> bool:
        return isinstance(k, int) and not isinstance(k, bool) and 0 <= k < self.pairs

    def put_input(self, row: Any, k: int = 0) -> int:
        """Copy a 1-D row (torch, any device, or array-like) into INₖ; its length."""
        return _copy_into(self._ins[k], row)

    def take_output(self, n: int, k: int = 0) -> np.ndarray:
        """A private copy of OUTₖ's first `n` floats (`n` is the engine's own expectation)."""
        return np.array(self._outs[k][:n], dtype=np.float32, copy=True)

    # ----- worker side ------------------------------------------------------------------------
    def input_view(self, n: int, k: int = 0) -> np.ndarray:
        """INₖ's first `n` floats, without copying (writable: mods edit rows in place)."""
        return self._ins[k][:n]

    def put_output(self, row: Any, k: int = 0) -> int | None:
        """Copy a returned row into OUTₖ; its length, or None when it does not fit (caller pipes it)."""
        return _copy_into(self._outs[k], row) if self.fits(_length(row)) else None


def _length(row: Any) -> int:
    shape = getattr(row, "shape", None)
    return int(np.prod(shape)) if shape is not None else int(np.asarray(row).size)


def _copy_into(slot: np.ndarray, row: Any) -> int:
    """Copy `row` flat into the start of `slot`; how many floats. CPU rows are copied by numpy,
    single-threaded: torch's `copy_` fans out to its thread pool and, on a busy host, waits ms
    for it. Strings or objects raise here (the caller reports the mod's error)."""
    if hasattr(row, "detach"):
        import torch

        with torch._C.DisableTorchFunctionSubclass():  # a LogitsTensor (or a mod's subclass): plain tensor ops
            try:  # a view of a CPU row; raises for a GPU row, one needing grad, or a dtype numpy lacks
                array = torch.Tensor.numpy(row)
            except (TypeError, RuntimeError):
                array = None
            if array is not None and array.ndim == 1 and array.dtype == np.float32:
                n = int(array.shape[0])  # the engine's own rows: one numpy copy, nothing else
                slot[:n] = array
                return n
            flat = row.detach().reshape(-1)
            n = int(flat.shape[0])
            if flat.device.type == "cpu" and flat.dtype != torch.bfloat16:
                slot[:n] = flat.numpy()
            else:  # a GPU row (one device-to-host copy) or a dtype numpy lacks
                torch.from_numpy(slot[:n]).copy_(flat)
        return n
    array = np.asarray(row).reshape(-1)
    slot[: array.shape[0]] = array
    return int(array.shape[0])
