"""Issue 13, as an attacker: a tenant (globex) signs and publishes hostile mods and runs them on the
replica that serves another tenant (acme), through the gateway, with the real openai client.

The replica runs as in production (a registry, signed mods, QUOTE_GATEWAY_SECRET, no dev mode), so
its mods run in confined per-tenant workers by default. For every attack class of the issue:
- acme's concurrent requests complete in full and answer as they do alone (token for token, up to
  the first near-tie of the random tiny model: see `_same_answer`);
- the attacker's request fails with a clear error naming its mod, or finds nothing;
- nothing the attacker gets back holds acme's data or the replica's secrets;
- the replica stays ready.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from quote_mod_sdk import keygen, serialize_mod
from tests.gateway import hostile_mods
from tests.gateway.conftest import SECRET, Gateway, Platform

MARKER = "ACME-CONFIDENTIAL-7731"  # matches hostile_mods.SECRET_PATTERN; only ever in acme's prompts
PROMPTS = [f"{MARKER} note {i}: summarise the quarter" for i in range(3)]
ATTACKS = [
    "snoop",
    "steal",
    "patcher",
    "sleeper",
    "gil_holder",
    "regex_bomb",
    "stubborn",
    "hog",
    "exiter",
    "interrupter",
    "base_raiser",
    "process_killer",
    "string_row",
]


Answer = list[tuple[str, float]]  # (token, margin of the greedy pick over the runner-up, in logprob)


def _acme(client: openai.OpenAI, prompt: str) -> Answer:
    answer = client.chat.completions.create(
        model="tiny-a",
        messages=[{"role": "user", "content": prompt}],
        max_tokens=8,
        temperature=0,
        seed=3,
        logprobs=True,
        top_logprobs=2,
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "length" and answer.usage is not None
    assert answer.usage.completion_tokens == 8 and choice.logprobs is not None and choice.logprobs.content
    return [(t.token, t.top_logprobs[0].logprob - t.top_logprobs[-1].logprob) for t in choice.logprobs.content]


def _same_answer(got: Answer, expected: Answer) -> bool:
    """Equal up to the first near-tie of the expected answer: the random tiny model's flat logits make a
    greedy pick within 1e-3 of the runner-up flip with float summation order (threads, batch shape), with
    or without any attack; everywhere the model is decisive the tokens must be the same."""
    for (token, _), (want, margin) in zip(got, expected):
        if margin < 1e-3:
            return True
        if token != want:
            return False
    return True


@pytest.fixture(scope="module")
def published(platform: Platform) -> None:
    globex = platform.tenants["globex"]
    key = keygen()
    globex.client.add_signing_key(key.public_b64())
    for name in [*ATTACKS, "just_under"]:
        bundle = serialize_mod(getattr(hostile_mods, name), name=name)
        globex.client.publish(name, "1.0.0", bundle, key=key)


@pytest.fixture(scope="module")
def baseline(gateway: Gateway, platform: Platform) -> dict[str, Answer]:
    """acme's answers with nobody else on the replica."""
    acme = platform.tenants["acme"].openai(gateway.v1)
    return {prompt: _acme(acme, prompt) for prompt in PROMPTS}


def _attack(client: openai.OpenAI, name: str) -> tuple[str | None, str | None]:
    """(content, error message) of the attacker's own request."""
    try:
        answer = client.chat.completions.create(
            model=f"tiny-a/{name}", messages=[{"role": "user", "content": "hello"}], max_tokens=8, temperature=0
        )
    except openai.APIStatusError as exc:
        assert exc.status_code < 500 or exc.status_code in (502, 503), exc  # never a bare 500
        return None, str(exc.message)
    return answer.choices[0].message.content or "", None


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_hostile_mod_hurts_only_its_own_request(
    attack: str, published: None, baseline: dict[str, Answer], gateway: Gateway, platform: Platform
) -> None:
    acme = platform.tenants["acme"].openai(gateway.v1)
    globex = platform.tenants["globex"].openai(gateway.v1)
    with ThreadPoolExecutor(len(PROMPTS) + 1) as pool:
        attacked = pool.submit(_attack, globex, attack)
        time.sleep(0.2)  # the attack is live while acme's requests run
        outputs = list(pool.map(lambda p: _acme(acme, p), PROMPTS))
        content, error = attacked.result(timeout=120)
    for out, p in zip(outputs, PROMPTS):
        assert _same_answer(out, baseline[p]), (out, baseline[p])
    seen = (content or "") + (error or "")
    for secret in (SECRET, platform.service_key, platform.tenants["acme"].key, MARKER):
        assert secret not in seen
    if error is not None:
        assert attack in error  # the failure names the mod
    else:
        assert content is not None and "FOUND" not in content and "GOT" not in content, content
    replica = platform.replicas["A"]
    assert httpx.get(replica.base_url + "/readyz", timeout=5).status_code == 200


def test_a_mod_that_monkeypatches_changes_nothing_for_anyone_after_it(
    published: None, baseline: dict[str, Answer], gateway: Gateway, platform: Platform
) -> None:
    globex = platform.tenants["globex"].openai(gateway.v1)
    acme = platform.tenants["acme"].openai(gateway.v1)
    _attack(globex, "patcher")
    assert all(_same_answer(_acme(acme, p), baseline[p]) for p in PROMPTS)


def test_a_mod_late_at_every_step_does_not_hold_back_the_batch(
    published: None, baseline: dict[str, Answer], gateway: Gateway, platform: Platform
) -> None:
    """`just_under` takes 1.2 s of its 2 s budget at every step, so it is never stopped; acme's
    co-batched requests skip the forwards its calls are still running through and finish long
    before it, with unchanged answers."""
    globex = platform.tenants["globex"].openai(gateway.v1)
    acme = platform.tenants["acme"].openai(gateway.v1)
    finished: dict[str, float] = {}
    lock = threading.Lock()

    def timed(label: str, call: Any) -> Any:
        result = call()
        with lock:
            finished[label] = time.monotonic()
        return result

    with ThreadPoolExecutor(len(PROMPTS) + 1) as pool:
        slow = pool.submit(timed, "attacker", lambda: _attack(globex, "just_under"))
        time.sleep(0.3)
        outputs = list(pool.map(lambda p: timed(p, lambda: _acme(acme, p)), PROMPTS))
        content, error = slow.result(timeout=120)
    assert error is None and content is not None  # a slow mod is not an error
    assert all(_same_answer(out, baseline[p]) for out, p in zip(outputs, PROMPTS))
    assert all(finished[p] < finished["attacker"] for p in PROMPTS)  # nobody waited for it
