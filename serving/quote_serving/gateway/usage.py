"""Usage records, written to the registry in batches off the request path.

    edge ─ add(record) (O(1), never waits) ─► pending queue ─ every `flush_s` ─► registry POST /v1/usage
                                                  ▲ a failed batch goes back to the front and is retried

Each record carries the upstream response's id as `request_id`, so a batch the registry stored but
whose answer was lost is harmless when sent again. While the registry is unreachable, up to
`max_pending` records wait; beyond that the oldest are dropped and the loss is logged. `close`
sends what is left (the gateway's shutdown waits for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from quote_serving.gateway.registry_link import UsageWriteFailed

__all__ = ["UsageRecorder"]

logger = logging.getLogger(__name__)


class UsageRecorder:
    def __init__(
        self,
        write: Callable[[list[dict[str, Any]]], Awaitable[Any]],
        *,
        flush_s: float = 1.0,
        batch: int = 500,
        max_pending: int = 100_000,
    ) -> None:
        self._write, self.flush_s, self.batch, self.max_pending = write, flush_s, batch, max_pending
        self._pending: deque[dict[str, Any]] = deque()
        self._dropped = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, record: dict[str, Any]) -> None:
        if len(self._pending) >= self.max_pending:
            self._pending.popleft()
            self._dropped += 1
        self._pending.append(record)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            await self.flush()

    async def flush(self) -> bool:
        """Send everything pending; False if the registry failed (the records stay queued)."""
        if self._dropped:
            logger.error("usage: %d records dropped while the registry was unreachable", self._dropped)
            self._dropped = 0
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(self.batch, len(self._pending)))]
            try:
                await self._write(batch)
            except UsageWriteFailed as exc:
                self._pending.extendleft(reversed(batch))
                logger.warning("usage: %d records not written yet (%s); retrying", len(self._pending), exc)
                return False
            except asyncio.CancelledError:
                self._pending.extendleft(reversed(batch))  # maybe stored already: request ids dedupe it
                raise
        return True

    async def close(self, timeout_s: float = 10.0) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            if not await asyncio.wait_for(self.flush(), timeout_s):
                logger.error("usage: %d records could not be written before shutdown", len(self._pending))
        except asyncio.TimeoutError:
            logger.error("usage: gave up writing %d records at shutdown", len(self._pending))
