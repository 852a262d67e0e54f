"""Usage recorded by the gateway equals what the responses said, streams included."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai

from quote_registry.client import RegistryClient
from tests.registry.conftest import ADMIN_KEY

from .conftest import Gateway, Platform

# (tenant, model, endpoint, stream): every combination the gateway meters differently.
MIXES = list(
    itertools.product(
        ("acme", "globex"),
        ("tiny-a", "tiny-a/acme:acme_public", "tiny-a/{tenant}_private"),
        ("chat", "completions"),
        (False, True),
    )
)


def _one(client: openai.OpenAI, tenant: str, model: str, endpoint: str, stream: bool, i: int) -> tuple[str, Any]:
    """(model, usage) of one request; streams ask for usage so the test can add it up."""
    model = model.format(tenant=tenant)
    options: dict[str, Any] = {"max_tokens": 2 + i % 5}
    if stream:
        options |= {"stream": True, "stream_options": {"include_usage": True}}
    if endpoint == "chat":
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"n{i}"}], **options)
    else:
        reply = client.completions.create(model=model, prompt=f"count {i}", **options)
    usage = [c.usage for c in reply if c.usage][-1] if stream else reply.usage
    return model, usage


def _totals(platform: Platform, prefixes: set[str]) -> dict[tuple[str, str], tuple[int, int, int]]:
    with RegistryClient(platform.registry.url, ADMIN_KEY) as admin:
        rows = [r for r in admin.usage() if r["key_prefix"] in prefixes]
    found: dict[tuple[str, str], tuple[int, int, int]] = {}
    for r in rows:
        model = r["model"] + (f"/{r['mod']}" if r["mod"] else "")
        found[(r["key_prefix"], model)] = (r["requests"], r["prompt_tokens"], r["completion_tokens"])
    return found


def test_usage_totals_equal_the_sum_of_the_responses_usage(gateway: Gateway, platform: Platform) -> None:
    keys = {name: t.new_key(platform.registry) for name, t in platform.tenants.items()}
    clients = {name: platform.tenants[name].openai(gateway.v1, key) for name, key in keys.items()}
    jobs = [(*MIXES[i % len(MIXES)], i) for i in range(100)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda j: (j[0], *_one(clients[j[0]], *j)), jobs))
    expected: Counter[tuple[str, str, str]] = Counter()
    for tenant, model, usage in results:
        prefix = keys[tenant].split("_")[1]
        expected[(prefix, model, "requests")] += 1
        expected[(prefix, model, "prompt")] += usage.prompt_tokens
        expected[(prefix, model, "completion")] += usage.completion_tokens
    want = {
        (prefix, model): (expected[(prefix, model, "requests")], expected[(prefix, model, "prompt")], c)
        for (prefix, model, kind), c in expected.items()
        if kind == "completion"
    }
    prefixes = {k.split("_")[1] for k in keys.values()}
    deadline = time.monotonic() + 15  # records reach the registry in batches, about once a second
    while _totals(platform, prefixes) != want and time.monotonic() < deadline:
        time.sleep(0.25)
    assert _totals(platform, prefixes) == want
    assert sum(v[0] for v in want.values()) == 100


def test_streams_that_did_not_ask_for_usage_are_still_counted(gateway: Gateway, platform: Platform) -> None:
    tenant = platform.tenants["acme"]
    key = tenant.new_key(platform.registry)
    client = tenant.openai(gateway.v1, key)
    chunks = list(
        client.chat.completions.create(
            model="tiny-a", messages=[{"role": "user", "content": "Hi"}], max_tokens=3, stream=True
        )
    )
    assert all(c.usage is None for c in chunks) and chunks[-1].choices[0].finish_reason
    prefix = key.split("_")[1]
    deadline = time.monotonic() + 15
    while not _totals(platform, {prefix}) and time.monotonic() < deadline:
        time.sleep(0.25)
    requests, prompt, completion = _totals(platform, {prefix})[(prefix, "tiny-a")]
    assert requests == 1 and prompt > 0 and 1 <= completion <= 3
