"""Two engine replicas behind one OpenAI ingress: both serve, both run mods, and losing one mid-request
fails only that request, cleanly, in OpenAI's error shape."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from tests.ray.conftest import QuoteApp, ServeCluster, deploy_with_mods
from tests.ray.mods import MARK

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(ray_cluster: ServeCluster) -> Iterator[QuoteApp]:
    yield from deploy_with_mods(ray_cluster, "replicas", min_replicas=2, max_replicas=2)


def chat_raw(client: Any, model: str, **kwargs: Any) -> Any:
    messages = [{"role": "user", "content": "Hi"}]
    params = {"temperature": 0, "max_tokens": 16, **kwargs}
    return client.chat.completions.with_raw_response.create(model=model, messages=messages, **params)


def test_both_replicas_serve_and_run_the_mod(app: QuoteApp) -> None:
    client = app.openai()
    seen: set[str] = set()
    for _ in range(5):  # Serve routes to the less busy of two random replicas: a few rounds see both
        with ThreadPoolExecutor(8) as pool:
            raws = list(pool.map(lambda _: chat_raw(client, "quote-tiny/mark"), range(8)))
        for raw in raws:
            assert raw.parse().choices[0].message.content == MARK  # the mod ran on whichever replica answered
            seen.add(raw.headers["x-quote-replica"])
        if len(seen) == 2:
            break
    assert len(seen) == 2 and all(r.startswith("replicas#QuoteEngine#") for r in seen)


def test_trace_of_a_remote_request_is_served_by_the_ingress(app: QuoteApp) -> None:
    response = chat_raw(app.openai(), "quote-tiny/mark").parse()
    trace = httpx.get(f"{app.v1}/traces/{response.id}", timeout=30).json()
    assert trace["mod"] == "mark"
    assert [(c["event"], c["action"]) for c in trace["mod_calls"]] == [("Prefilled", "force_output")]


def test_plain_and_streaming_requests_agree_across_the_hop(app: QuoteApp) -> None:
    client = app.openai()
    plain = chat_raw(client, "quote-tiny", seed=3).parse().choices[0].message.content
    chunks = list(chat_raw(client, "quote-tiny", seed=3, stream=True).parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == plain


def test_unknown_mod_is_a_404_in_openai_shape(app: QuoteApp) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        chat_raw(app.openai(), "quote-tiny/no_such_mod")
    assert info.value.body["code"] == "mod_not_found"


def test_killing_a_replica_mid_stream_ends_that_request_with_an_error_and_the_next_succeed(app: QuoteApp) -> None:
    import ray

    client = app.openai()
    raw = chat_raw(client, "quote-tiny/slow", max_tokens=400, stream=True, extra_body={"ignore_eos": True})
    replica = raw.headers["x-quote-replica"]
    stream = iter(raw.parse())
    assert next(stream).choices[0].delta.role == "assistant"
    next(stream)  # text is flowing: the request is mid-generation on `replica`
    ray.kill(ray.get_actor(f"SERVE_REPLICA::{replica}", namespace="serve"), no_restart=True)
    with pytest.raises(openai.APIError) as info:
        for _ in stream:
            pass
    assert info.value.body["code"] == "engine_error" and "Retry" in info.value.message
    for _ in range(3):
        answer = chat_raw(client, "quote-tiny/mark")
        assert answer.parse().choices[0].message.content == MARK
        assert answer.headers["x-quote-replica"] != replica


def test_deleting_the_app_lets_a_streaming_request_in_flight_finish(app: QuoteApp) -> None:
    """Graceful drain (this test runs last: it removes the module's app)."""
    from ray import serve

    raw = chat_raw(app.openai(), "quote-tiny/slow", max_tokens=100, stream=True, extra_body={"ignore_eos": True})
    stream = iter(raw.parse())
    for _ in range(2):
        next(stream)  # generating
    with ThreadPoolExecutor(1) as pool:
        deleting = pool.submit(serve.delete, app.name)
        rest = list(stream)
        deleting.result(timeout=120)
    assert rest[-1].choices[0].finish_reason in ("length", "stop")
    assert app.name not in serve.status().applications
