"""One mod worker process as the engine sees it: spawn, exchange frames, measure, kill.

    WorkerProcess(spec) ── python -I -m quote_serving.runtime.mod_worker CONFIG ──► ready frame
        exchange(header, row) ─► stdin frame (+ row in the IN slot) │ worker │ stdout frame ─► answer
        post(frame) … frames()   the same pipes without blocking: frames queue in an outbox, and
                                 answers are taken as they come (`runtime/mod_calls.py` pipelines)

Spawned from a clean interpreter (`python -I`, never forked from the engine) in a new session,
with a scrubbed environment (no QUOTE_* secrets) and exactly one extra descriptor, its `RowSlots`
memfd. Every read waits at most until the caller's deadline; what the worker sends is parsed as
untrusted data (`mod_protocol`). Who may use a process when (tenants, requests, locks) is the
pool's business (`mod_pool`), not this module's.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from quote_serving.runtime.mod_cpu import CpuClock, IdleMeter
from quote_serving.runtime.mod_protocol import ProtocolError, decode_header, encode_frame, split_prefix, take_frames
from quote_serving.runtime.mod_slots import DEFAULT_CAPACITY, DEFAULT_PAIRS, RowSlots

__all__ = ["SpawnSpec", "WorkerDied", "WorkerProcess"]

_KEEP_ENV = ("PATH", "LANG", "LC_ALL", "TZ")


class WorkerDied(RuntimeError):
    """The worker exited, was killed, or broke the protocol (`reason`: died or protocol)."""

    def __init__(self, message: str, reason: str = "died") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SpawnSpec:
    """What every worker of one pool is started with."""

    home: str  # the pool's private temp dir: the worker's cwd and HOME
    tokenizer_dir: str | None
    memory_mb: int
    cpu_s: int
    start_timeout_s: float
    row_capacity: int = DEFAULT_CAPACITY
    idle_cpu_s: float = 0.5
    row_pairs: int = DEFAULT_PAIRS


class WorkerProcess:
    """A spawned worker (`wait_ready` before use). `exchange` is for a worker nobody else talks
    to (a one-shot loader); the pool's calls go through `post` / `frames` (`mod_calls.CallQueue`)."""

    def __init__(self, spec: SpawnSpec) -> None:
        self.slots = RowSlots.create(spec.row_capacity, spec.row_pairs)
        config = {
            "tokenizer_dir": spec.tokenizer_dir,
            "memory_mb": spec.memory_mb,
            "cpu_s": spec.cpu_s,
            "rows_fd": self.slots.fd,
            "row_capacity": spec.row_capacity,
            "row_pairs": spec.row_pairs,
        }
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-m", "quote_serving.runtime.mod_worker", json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=_worker_env(spec.home),
                cwd=spec.home,
                close_fds=True,
                pass_fds=(self.slots.fd,),
                start_new_session=True,  # a signal to the engine's group never reaches it, nor its to ours
            )
        finally:
            self.slots.close_fd()
        try:
            self.clock: CpuClock | None = CpuClock(self.proc.pid)
        except OSError:  # already gone: cpu() answers None, as for a dead worker
            self.clock = None
        self.out_fd = self.proc.stdout.fileno()  # type: ignore[union-attr]  # pipes: Popen opened with PIPE
        self.in_fd = self.proc.stdin.fileno()  # type: ignore[union-attr]  # pipes: Popen opened with PIPE
        os.set_blocking(self.in_fd, False)  # writes wait on select, until the caller's deadline
        os.set_blocking(self.out_fd, False)  # reads too; `frames` takes what is there
        self.outbox = bytearray()  # posted, not yet taken by the pipe
        self.inbox = bytearray()  # read, not yet a whole frame
        self.start_timeout_s = spec.start_timeout_s
        self.layers: dict[str, str] = {}
        self.idle = IdleMeter(limit=spec.idle_cpu_s)

    def wait_ready(self) -> WorkerProcess:
        """Wait for its ready frame (its confinement layers); a worker that cannot start is killed."""
        try:
            ready, _ = self.receive(time.monotonic() + self.start_timeout_s)
        except BaseException:
            self.kill()
            raise
        self.layers = {str(k): str(v) for k, v in dict(ready.get("layers") or {}).items()}
        self.idle.mark(self.cpu() or 0.0)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu(self) -> float | None:
        """Lifetime CPU seconds (all threads); None once it is gone."""
        return None if self.clock is None else self.clock.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self.clock is not None:
            self.clock.close()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        self.slots.close()

    def exchange(self, header: dict[str, Any], blob: bytes, deadline: float) -> tuple[dict[str, Any], bytes]:
        """Send one frame, wait until `deadline` for the answer (TimeoutError past it)."""
        self._write(memoryview(encode_frame(header, blob)), deadline)
        return self.receive(deadline)

    def post(self, frame: bytes) -> None:
        """Queue a frame for the worker and write what its pipe takes now; never blocks."""
        self.outbox += frame
        self.flush()

    def flush(self) -> bool:
        """Write what the pipe takes of the outbox; True when it is empty. WorkerDied when closed."""
        while self.outbox:
            try:
                written = os.write(self.in_fd, memoryview(self.outbox)[: 1 << 20])
            except BlockingIOError:
                return False
            except (OSError, ValueError) as exc:  # BrokenPipeError; a pipe closed by a kill
                raise WorkerDied(self.death()) from exc
            del self.outbox[:written]
        return True

    def frames(self) -> tuple[list[tuple[dict[str, Any], bytes]], str | None]:
        """Every whole frame the worker sent since the last call, without blocking, and why it is
        gone if its pipe closed (frames sent before it went are still returned)."""
        ended: str | None = None
        while True:
            try:
                chunk = os.read(self.out_fd, 1 << 16)
            except BlockingIOError:
                break
            except (OSError, ValueError):  # closed by a kill from another thread
                chunk = b""
            if not chunk:
                ended = "closed"
                break
            self.inbox += chunk
            if len(chunk) < 1 << 16:  # the pipe held less than asked: drained for now
                break
        try:
            frames = take_frames(self.inbox)
        except ProtocolError as exc:
            self.kill()
            raise WorkerDied(f"its worker broke the protocol ({exc})", "protocol") from None
        return frames, (self.death() if ended else None)

    def _write(self, data: memoryview, deadline: float) -> None:
        """Write all of `data` by `deadline`: a worker that stops reading (its main thread starved
        by a mod's thread) cannot hold a frame larger than the pipe's buffer, and us, forever."""
        while data:
            left = deadline - time.monotonic()
            try:
                ready = select.select([], [self.in_fd], [], left)[1] if left > 0 else []
                written = os.write(self.in_fd, data[: 1 << 20]) if ready else None
            except BlockingIOError:
                continue
            except (OSError, ValueError) as exc:  # BrokenPipeError; a pipe closed by a kill
                raise WorkerDied(self.death()) from exc
            if written is None:
                raise TimeoutError
            data = data[written:]

    def receive(self, deadline: float) -> tuple[dict[str, Any], bytes]:
        try:
            header_len, blob_len = split_prefix(self._read(8, deadline))
            header = decode_header(self._read(header_len, deadline))
            blob = self._read(blob_len, deadline) if blob_len else b""
        except ProtocolError as exc:
            self.kill()
            raise WorkerDied(f"its worker broke the protocol ({exc})", "protocol") from None
        return header, blob

    def _read(self, n: int, deadline: float) -> bytes:
        parts: list[bytes] = []
        while n > 0:
            left = deadline - time.monotonic()
            try:
                ready = select.select([self.out_fd], [], [], left)[0] if left > 0 else []
                chunk = os.read(self.out_fd, min(n, 1 << 20)) if ready else None
            except BlockingIOError:  # a spurious wake-up
                continue
            except (OSError, ValueError):  # the pipe was closed by a kill from another thread
                chunk = b""
            if chunk is None:
                raise TimeoutError
            if not chunk:
                raise WorkerDied(self.death())
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)

    def death(self) -> str:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            return f"its worker was killed by {name}"
        return f"its worker exited with status {code}"


def _worker_env(home: str) -> dict[str, str]:
    """Only what Python needs: no QUOTE_* secrets, nothing of the engine's configuration."""
    env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
    env.update(
        {
            "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",  # no thread pool that predates the Landlock domain
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HOME": home,
        }
    )
    return env
