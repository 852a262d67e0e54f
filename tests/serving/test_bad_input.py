"""Every client mistake is a 4xx in OpenAI's shape; a failing mod fails only its own request."""

from __future__ import annotations

import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

MODEL = "quote-tiny"
CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Hi"}]


def bundle(name: str, body: str, **extra: Any) -> dict[str, Any]:
    source = "from quote_mod_sdk import mod, ForwardPass, Added\n" + textwrap.dedent(body)
    return {"language": "python", "module": name, "entrypoint": name, "source": source, "name": name, **extra}


FAILING = {
    "raiser": """
        @mod
        def raiser(event, actions):
            if isinstance(event, ForwardPass) and event.step == 2:
                raise ValueError("the mod blew up")
    """,
    "hanger": """
        @mod
        def hanger(event, actions):
            if isinstance(event, ForwardPass) and event.step == 2:
                while True:
                    pass
    """,
    "garbage": """
        @mod
        def garbage(event, actions):
            if isinstance(event, ForwardPass):
                return {"not": "an action"}
    """,
    "refuser": """
        @mod
        def refuser(event, actions):
            if isinstance(event, Added):
                return actions.emit_error("policy says no")
    """,
}


@pytest.fixture(scope="module")
def failing_mods(http: httpx.Client) -> None:
    for name, body in FAILING.items():
        assert http.post("/v1/mods", json=bundle(name, body)).status_code in (200, 201)


def assert_openai_error(response: httpx.Response, status: int, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param
    return error


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "no-such-model", "messages": MESSAGES}, 404, "model"),
        ({"model": f"{MODEL}/no_such_mod", "messages": MESSAGES}, 404, "model"),
        ({"model": f"{MODEL}/raiser@99", "messages": MESSAGES}, 400, "model"),  # not a version, alias or range
        ({"model": f"{MODEL}/raiser@9.9.9", "messages": MESSAGES}, 404, "model"),
        ({"messages": MESSAGES}, 400, "model"),
        ({"model": MODEL}, 400, "messages"),
        ({"model": MODEL, "messages": []}, 400, "messages"),
        ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, 400, None),
        ({"model": MODEL, "messages": MESSAGES, "temperature": 5}, 400, "temperature"),
        ({"model": MODEL, "messages": MESSAGES, "top_p": 0}, 400, "top_p"),
        ({"model": MODEL, "messages": MESSAGES, "max_tokens": 0}, 400, "max_tokens"),
        ({"model": MODEL, "messages": MESSAGES, "max_tokens": 10**6}, 400, "messages"),
        ({"model": MODEL, "messages": MESSAGES, "n": 3}, 400, "n"),
        ({"model": MODEL, "messages": MESSAGES, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
        ({"model": MODEL, "messages": MESSAGES, "top_logprobs": 3}, 400, None),
        ({"model": MODEL, "messages": MESSAGES, "frequency_penalty": 1.0}, 400, "frequency_penalty"),
    ],
)
def test_bad_chat_bodies_are_4xx_in_openai_shape(
    http: httpx.Client, body: dict, status: int, param: str | None
) -> None:  # type: ignore[type-arg]
    assert_openai_error(http.post(CHAT, json=body), status, param)


def test_malformed_json_is_400(http: httpx.Client) -> None:
    response = http.post(
        CHAT, content=b'{"model": "quote-tiny", "messages": [', headers={"content-type": "application/json"}
    )
    assert "parse the JSON" in assert_openai_error(response, 400)["message"]


def test_oversized_body_is_413(http: httpx.Client) -> None:
    huge = {"model": MODEL, "messages": [{"role": "user", "content": "x" * (2 << 20)}]}
    assert_openai_error(http.post(CHAT, json=huge), 413)


def test_unknown_route_and_method_are_openai_errors(http: httpx.Client) -> None:
    assert_openai_error(http.get("/v1/nothing"), 404)
    assert_openai_error(http.get(CHAT), 405)
    assert_openai_error(http.get("/v1/traces/unknown-id"), 404)


def test_openai_client_sees_not_found(openai_client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.NotFoundError):
        openai_client.chat.completions.create(model=f"{MODEL}/nope", messages=MESSAGES)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (["a", "list"], "JSON object"),
        ({"language": "python", "source": "x = ", "module": "m", "entrypoint": "e", "name": "broken"}, "SyntaxError"),
        (bundle("boom_at_import", "raise RuntimeError('import-time failure')\n"), "import-time failure"),
        ({"language": "python", "module": "m", "entrypoint": "e"}, "'source'"),
    ],
)
def test_bad_mod_registrations_are_400(http: httpx.Client, payload: Any, message: str) -> None:
    assert message in assert_openai_error(http.post("/v1/mods", json=payload), 400)["message"]


def test_versions_are_immutable(http: httpx.Client) -> None:
    first = bundle("pinned", "@mod\ndef pinned(event, actions):\n    return None\n", version="1.0.0")
    assert http.post("/v1/mods", json=first).status_code == 201
    assert http.post("/v1/mods", json=first).status_code == 200  # identical content: a no-op
    changed = {**first, "source": first["source"] + "# changed\n"}
    assert_openai_error(http.post("/v1/mods", json=changed), 409, "version")


@pytest.mark.usefixtures("failing_mods")
@pytest.mark.parametrize(
    ("name", "message"),
    [("raiser", "the mod blew up"), ("hanger", "budget"), ("garbage", "returned dict"), ("refuser", "policy says no")],
)
def test_failing_mod_fails_only_its_request(http: httpx.Client, name: str, message: str) -> None:
    def ok_request(i: int) -> httpx.Response:
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"hello {i}"}], "max_tokens": 24}
        return http.post(CHAT, json=body)

    with ThreadPoolExecutor(8) as pool:
        others = [pool.submit(ok_request, i) for i in range(7)]
        failed = pool.submit(http.post, CHAT, json={"model": f"{MODEL}/{name}", "messages": MESSAGES, "max_tokens": 24})
        health = http.get("/healthz")
        error = assert_openai_error(failed.result(), 422)
        assert name in error["message"] and message in error["message"] and error["type"] == "mod_error"
        assert all(f.result().status_code == 200 for f in others)
        # the tiny model may sample its end token early: every request completed, none failed
        assert all(f.result().json()["choices"][0]["finish_reason"] in ("stop", "length") for f in others)
    assert health.status_code == 200 and http.get("/healthz").status_code == 200


@pytest.mark.usefixtures("failing_mods")
def test_failing_mod_while_streaming_is_a_4xx_before_any_text(openai_client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.UnprocessableEntityError, match="raiser"):
        list(openai_client.chat.completions.create(model=f"{MODEL}/raiser", messages=MESSAGES, stream=True))


def test_slow_streaming_client_does_not_stall_others(server, http: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 200, "stream": True}
    release = threading.Event()

    def slow_reader() -> int:
        with httpx.Client(base_url=server.base_url, timeout=60) as client, client.stream("POST", CHAT, json=body) as r:
            release.wait(20)
            return sum(1 for _ in r.iter_lines())

    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(slow_reader)
        time.sleep(0.5)
        started = time.monotonic()
        quick = http.post(CHAT, json={"model": MODEL, "messages": MESSAGES, "max_tokens": 8})
        assert quick.status_code == 200 and time.monotonic() - started < 15
        release.set()
        assert slow.result() > 10


@pytest.mark.parametrize("seed", [2**64, 2**63, -1])
def test_out_of_range_seed_is_400_and_the_engine_keeps_serving(http: httpx.Client, seed: int) -> None:
    """A 2^64 seed once reached the sampler and ended the engine thread; every later request hung."""
    body = {"model": "quote-tiny", "messages": [{"role": "user", "content": "Hi"}], "seed": seed, "max_tokens": 2}
    assert_openai_error(http.post("/v1/chat/completions", json=body), 400, "seed")
    ok = http.post("/v1/chat/completions", json={**body, "seed": 2**63 - 1})
    assert ok.status_code == 200, ok.text


def test_deeply_nested_json_is_400_at_the_replica(http: httpx.Client) -> None:
    raw = b'{"model": "quote-tiny", "messages": [], "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    response = http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert_openai_error(response, 400)
    assert "nests deeper" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "model", ["quote-tiny/\u0000", "quote-tiny/" + "m" * 100_000, "quote-tiny/m@^", "quote-tiny/m@,"]
)
def test_malformed_mod_names_are_400_at_the_replica(http: httpx.Client, model: str) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}
    assert_openai_error(http.post("/v1/chat/completions", json=body), 400, "model")
