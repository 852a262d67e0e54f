"""Which replicas may take traffic: active `/readyz` checks plus passive outlier ejection.

    HealthChecker ─ every `interval_s` ─► GET <replica>/readyz for every URL in the route table
        200 ─► ready            any other answer, or the connection refused ─► not ready
        no answer within `timeout_s` ─► not ready only after `slow_limit` such checks in a row
        (a replica busy for a moment, or a loaded node, is not taken out by one late answer)
    ProxyApp ─ a replica dropped a request, refused a connection, or answered 5xx `outlier_5xx`
        times in a row ─► ReplicaSet.eject (skipped for `eject_s`)

A replica that was never checked counts as ready (a new route works at once); one whose last
check failed gets no traffic until a check passes. Both kinds of state live in the ReplicaSet,
keyed by URL, so they survive route table reloads.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from quote_serving.gateway.replicas import ReplicaSet
from quote_serving.gateway.routes import RouteTable

__all__ = ["HealthChecker", "readyz_url"]

logger = logging.getLogger(__name__)


def readyz_url(replica_url: str) -> str:
    """Route entries name a replica's OpenAI base (…/v1); readiness is served at the root."""
    return replica_url.rstrip("/").removesuffix("/v1") + "/readyz"


class HealthChecker:
    def __init__(
        self, table: RouteTable, replicas: ReplicaSet, *, interval_s: float, timeout_s: float, slow_limit: int = 3
    ) -> None:
        self.table, self.replicas = table, replicas
        self.interval_s, self.timeout_s, self.slow_limit = interval_s, timeout_s, slow_limit
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def urls(self) -> set[str]:
        return {url for route in self.table.routes for urls in route.endpoints.values() for url in urls}

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def check_all(self) -> None:
        await asyncio.gather(*(self._check(url) for url in self.urls()))

    async def _loop(self) -> None:
        while True:
            try:
                await self.check_all()
            except Exception:  # a checker that dies would freeze every replica's state
                logger.exception("replica health checks failed")
            await asyncio.sleep(self.interval_s)

    async def _check(self, url: str) -> None:
        if self._session is None:  # made on the running loop, at the first check
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        replica = self.replicas.get(url)
        try:
            async with self._session.get(readyz_url(url)) as response:
                ready = response.status == 200
            replica.slow_checks = 0
        except TimeoutError:  # aiohttp's ServerTimeoutError and ConnectionTimeoutError included
            replica.slow_checks += 1
            ready = replica.ready and replica.slow_checks < self.slow_limit
        except aiohttp.ClientError:
            replica.slow_checks = 0
            ready = False
        if ready != replica.ready:
            logger.warning("replica %s is %s", url, "ready" if ready else "NOT ready (no traffic until it is)")
        replica.ready, replica.checked_at = ready, time.monotonic()
