"""An attacker with an ordinary `infer` key: each finding that was a 5xx, a hang or a dead engine is a 4xx.

Through a real gateway to real replicas (`quote serve` processes), with httpx and the openai client.
"""

from __future__ import annotations

import json

import httpx
import pytest

from .conftest import Gateway, Platform
from .test_bad_input import _bearer, _chat, _error

HI = [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize("seed", [2**64, 2**63, -1, 10**400])
def test_out_of_range_seeds_are_400_and_the_replica_keeps_serving(
    gateway: Gateway, platform: Platform, seed: int
) -> None:
    body = {"model": "tiny-a", "messages": HI, "seed": seed, "max_tokens": 2}
    assert _error(_chat(gateway, _bearer(platform), body), 400)["param"] == "seed"
    ok = _chat(gateway, _bearer(platform), {"model": "tiny-a", "messages": HI, "seed": 2**63 - 1, "max_tokens": 2})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("depth", [100, 5_000, 30_000])
def test_deeply_nested_json_is_400_at_the_gateway(gateway: Gateway, platform: Platform, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    raw = f'{{"model": "tiny-a", "messages": [{{"role": "user", "content": "Hi"}}], "x": {nested}}}'.encode()
    headers = {**_bearer(platform), "content-type": "application/json"}
    response = httpx.post(gateway.v1 + "/chat/completions", content=raw, headers=headers, timeout=30)
    assert _error(response, 400)["code"] == "json_too_deep"


def test_brackets_inside_strings_do_not_count_as_nesting(gateway: Gateway, platform: Platform) -> None:
    content = "[[[[{{{{" * 200 + '\\"]]]'
    raw = json.dumps({"model": "tiny-a", "messages": [{"role": "user", "content": content}], "max_tokens": 2})
    headers = {**_bearer(platform), "content-type": "application/json"}
    response = httpx.post(gateway.v1 + "/chat/completions", content=raw.encode(), headers=headers, timeout=60)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "model",
    [
        "tiny-a/\u0000",
        "tiny-a/" + "m" * 60_000,  # (the test gateway takes 64 KiB bodies)
        "tiny-a/mod\u0085name",
        "tiny-a/ok@^",
        "tiny-a/ok@~",
        "tiny-a/ok@,",
        "tiny-a/ok@" + "9" * 5000 + ".0.0",
        "tiny-a/ok@^" + "9" * 5000 + ".0.0",
        "tiny-a/a b",
        "tiny-a/Bad:tenant",
    ],
)
def test_malformed_model_strings_are_400_before_any_lookup(gateway: Gateway, platform: Platform, model: str) -> None:
    body = {"model": model, "messages": HI, "max_tokens": 2}
    error = _error(_chat(gateway, _bearer(platform), body), 400)
    assert error["param"] == "model" and error["code"] == "invalid_model"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_tokens", 2**70),
        ("top_k", 2**70),
        ("top_logprobs", 10**9),
        ("stop", ["x" * 10_000]),
        ("user", "u" * 10_000),
    ],
)
def test_unbounded_numbers_and_strings_are_400(gateway: Gateway, platform: Platform, field: str, value: object) -> None:
    body = {"model": "tiny-a", "messages": HI, "max_tokens": 2, "logprobs": True, field: value}
    assert _error(_chat(gateway, _bearer(platform), body), 400)["param"] == field


def test_the_gateway_serves_on_after_every_attack(gateway: Gateway, platform: Platform) -> None:
    client = platform.tenants["acme"].openai(gateway.v1)
    answer = client.chat.completions.create(model="tiny-a", messages=HI, max_tokens=3)  # type: ignore[arg-type]
    assert answer.choices[0].finish_reason in {"length", "stop"}
