"""The gateway's active /readyz checks against real HTTP servers: a late answer is not a verdict,
a refusal or a 503 is."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from quote_serving.gateway.health import HealthChecker
from quote_serving.gateway.replicas import ReplicaSet
from quote_serving.gateway.routes import Route, RouteTable
from tests.registry.conftest import serve_in_thread
from tests.serving.conftest import free_port


class Readyz:
    """/readyz that answers with `status` after `delay_s`."""

    def __init__(self) -> None:
        self.status, self.delay_s = 200, 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await asyncio.sleep(self.delay_s)
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


@pytest.fixture
def replica() -> Iterator[tuple[str, Readyz]]:
    app = Readyz()
    url, server, thread = serve_in_thread(app)
    yield url + "/v1", app
    server.should_exit = True
    thread.join(timeout=10)


def _checker(*urls: str) -> HealthChecker:
    table = RouteTable([Route("m", {"*": tuple(urls)})])
    return HealthChecker(table, ReplicaSet(), interval_s=60, timeout_s=0.2, slow_limit=3)


async def _checks(checker: HealthChecker, url: str, n: int) -> list[bool]:
    try:
        seen = []
        for _ in range(n):
            await checker.check_all()
            seen.append(checker.replicas.get(url).ready)
        return seen
    finally:
        await checker.stop()


def test_a_replica_late_to_answer_is_taken_out_only_after_three_late_checks(replica: tuple[str, Readyz]) -> None:
    url, app = replica
    app.delay_s = 1.0
    assert asyncio.run(_checks(_checker(url), url, 4)) == [True, True, False, False]


def test_a_late_answer_then_a_good_one_starts_the_count_again(replica: tuple[str, Readyz]) -> None:
    url, app = replica
    checker = _checker(url)

    async def run() -> list[bool]:
        try:
            seen = []
            for delay in (1.0, 1.0, 0.0, 1.0, 1.0):
                app.delay_s = delay
                await checker.check_all()
                seen.append(checker.replicas.get(url).ready)
            return seen
        finally:
            await checker.stop()

    assert asyncio.run(run()) == [True, True, True, True, True]


def test_a_replica_that_says_it_is_not_ready_is_out_at_once(replica: tuple[str, Readyz]) -> None:
    url, app = replica
    app.status = 503
    assert asyncio.run(_checks(_checker(url), url, 1)) == [False]


def test_a_replica_that_refuses_connections_is_out_at_once() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    assert asyncio.run(_checks(_checker(url), url, 1)) == [False]
