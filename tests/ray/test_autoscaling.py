"""The engine deployment autoscales: up under load, back down when idle; a lost replica is replaced."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from tests.ray.conftest import QuoteApp, ServeCluster, deploy_with_mods, wait_until
from tests.ray.mods import MARK

pytestmark = pytest.mark.slow

FAST_AUTOSCALING = {
    "min_replicas": 1,
    "max_replicas": 2,
    "target_ongoing_requests": 1,
    "upscale_delay_s": 1,
    "downscale_delay_s": 3,
    "look_back_period_s": 2,
    "metrics_interval_s": 0.5,
}


@pytest.fixture(scope="module")
def app(ray_cluster: ServeCluster) -> Iterator[QuoteApp]:
    yield from deploy_with_mods(ray_cluster, "autoscale", **FAST_AUTOSCALING)


def slow_chat(client: Any, max_tokens: int = 60) -> Any:
    messages = [{"role": "user", "content": "Hi"}]
    # Exactly max_tokens tokens at 40 ms each: the random model's EOS must not cut a request short.
    return client.chat.completions.create(
        model="quote-tiny/slow", messages=messages, max_tokens=max_tokens, extra_body={"ignore_eos": True}
    )


def test_engine_scales_up_under_load_and_back_down(app: QuoteApp) -> None:
    client, stop = app.openai(), threading.Event()
    finished: list[str] = []

    def keep_busy(_: int) -> None:
        while not stop.is_set():
            finished.append(slow_chat(client).choices[0].finish_reason)

    assert app.running_engines() == 1
    with ThreadPoolExecutor(4) as pool:
        workers = [pool.submit(keep_busy, i) for i in range(4)]
        try:
            wait_until(lambda: app.running_engines() == 2, 120, "a second engine replica under load")
        finally:
            stop.set()
        for worker in workers:
            worker.result()
    assert finished and set(finished) <= {"length", "stop"}  # every request under load completed
    wait_until(lambda: app.running_engines() == 1, 120, "scaling back down to one replica when idle")


def test_a_killed_lone_replica_fails_its_request_cleanly_and_is_replaced(app: QuoteApp) -> None:
    import ray

    client = app.openai(timeout=120)
    wait_until(lambda: app.running_engines() == 1, 120, "one engine replica")
    raw = client.chat.completions.with_raw_response.create(
        model="quote-tiny/mark", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    replica = raw.headers["x-quote-replica"]
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(slow_chat, client, max_tokens=400)
        # let it reach the engine and start generating: 400 tokens at 40 ms take ~16 s, so 4 s leaves
        # it mid-request (1.5 s was sometimes too short under load: Serve then sent it to the new replica)
        time.sleep(4)
        ray.kill(ray.get_actor(f"SERVE_REPLICA::{replica}", namespace="serve"), no_restart=True)
        with pytest.raises(openai.InternalServerError) as info:
            pending.result(timeout=60)
    assert info.value.body["code"] == "engine_error"
    answer = client.chat.completions.with_raw_response.create(
        model="quote-tiny/mark", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert answer.parse().choices[0].message.content == MARK
    assert answer.headers["x-quote-replica"] != replica
