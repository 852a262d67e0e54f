"""Shared-memory logits rows between the engine and one mod worker.

A ForwardPass row is vocab-sized float32 (~600 KB on a 150k vocabulary): piping it to the worker
and an edited copy back would cost two pipe copies each way per request per step. Instead each
worker gets one sealed memfd with two slots, mapped by both processes:

    engine: put_input(row) ──► [ IN slot | OUT slot ] ◄── worker: put_output(edited row)
            take_output(n) ◄──┘   (one memfd, size fixed and sealed) └──► input_view(n): zero-copy

The frame on the pipe carries only the header (`row`: how many floats are in IN; `logits: "slot"`
and `n` in the answer). The worker can scribble on the region at any time, so the engine never
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
_F32 = 4


class RowSlots:
    """An IN and an OUT float32 slot of `capacity` floats each, in one shared mapping."""

    def __init__(self, fd: int, capacity: int) -> None:
        self.fd = fd
        self.capacity = capacity
        self._map = mmap.mmap(fd, 2 * capacity * _F32, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        floats = np.frombuffer(self._map, dtype=np.float32, count=2 * capacity)
        self._in, self._out = floats[:capacity], floats[capacity:]

    @classmethod
    def create(cls, capacity: int = DEFAULT_CAPACITY) -> RowSlots:
        """The engine's side: a new sealed memfd (inheritable only via `pass_fds`)."""
        fd = os.memfd_create("quote-mod-rows", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, 2 * capacity * _F32)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
            return cls(fd, capacity)
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
        with contextlib.suppress(BufferError):  # a view still lives somewhere; the GC unmaps then
            self._map.close()

    # ----- engine side ------------------------------------------------------------------------
    def fits(self, n: int) -> bool:
        return 0 < n <= self.capacity

    def put_input(self, row: Any) -> int:
        """Copy a 1-D row (torch, any device, or array-like) into IN; its length."""
        return _copy_into(self._in, row)

    def take_output(self, n: int) -> np.ndarray:
        """A private copy of OUT's first `n` floats (`n` is the engine's own expectation)."""
        return np.array(self._out[:n], dtype=np.float32, copy=True)

    # ----- worker side ------------------------------------------------------------------------
    def input_view(self, n: int) -> np.ndarray:
        """IN's first `n` floats, without copying (writable: mods edit rows in place)."""
        return self._in[:n]

    def put_output(self, row: Any) -> int | None:
        """Copy a returned row into OUT; its length, or None when it does not fit (caller pipes it)."""
        return _copy_into(self._out, row) if self.fits(_length(row)) else None


def _length(row: Any) -> int:
    shape = getattr(row, "shape", None)
    return int(np.prod(shape)) if shape is not None else int(np.asarray(row).size)


def _copy_into(slot: np.ndarray, row: Any) -> int:
    """Copy `row` flat into the start of `slot`; how many floats. CPU rows are copied by numpy,
    single-threaded: torch's `copy_` fans out to its thread pool and, on a busy host, waits ms
    for it. Strings or objects raise here (the caller reports the mod's error)."""
    if hasattr(row, "detach"):
        import torch

        with torch._C.DisableTorchFunctionSubclass():  # a LogitsTensor row: plain tensor ops
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
