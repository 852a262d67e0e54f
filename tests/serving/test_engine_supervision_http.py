"""At a real `quote serve` process, with the real openai client: a mod that raises `SystemExit`,
`KeyboardInterrupt` or any `BaseException`, or returns a logits row of strings, fails only its own
request; the concurrent requests of others complete and the replica stays ready (issues 13, 14)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from tests.serving.test_bad_input import bundle

MODEL = "quote-tiny"
MESSAGES = [{"role": "user", "content": "Hi"}]

ATTACKS = {
    "exits": """
        @mod
        def exits(event, actions):
            if isinstance(event, ForwardPass) and event.step == 1:
                raise SystemExit(0)
    """,
    "interrupts": """
        @mod
        def interrupts(event, actions):
            if isinstance(event, ForwardPass) and event.step == 1:
                raise KeyboardInterrupt
    """,
    "escapes": """
        class Escape(BaseException):
            pass

        @mod
        def escapes(event, actions):
            if isinstance(event, ForwardPass) and event.step == 1:
                raise Escape("out of the engine loop")
    """,
    "strings": """
        import numpy as np

        @mod
        def strings(event, actions):
            if isinstance(event, ForwardPass):
                return actions.adjust_logits(np.array(["x"] * event.logits.shape[-1], dtype=object))
    """,
}


@pytest.fixture(scope="module")
def attack_mods(http: httpx.Client) -> None:
    for name, body in ATTACKS.items():
        assert http.post("/v1/mods", json=bundle(name, body)).status_code in (200, 201)


@pytest.mark.usefixtures("attack_mods")
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_the_attack_fails_alone_and_the_replica_keeps_serving(
    openai_client: Any, http: httpx.Client, name: str
) -> None:
    def victim(i: int) -> Any:
        return openai_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"hello {i}"}], max_tokens=16, temperature=0
        )

    with ThreadPoolExecutor(5) as pool:
        others = [pool.submit(victim, i) for i in range(4)]
        with pytest.raises(openai.UnprocessableEntityError) as caught:
            openai_client.chat.completions.create(model=f"{MODEL}/{name}", messages=MESSAGES, max_tokens=16)
        replies = [f.result() for f in others]
    assert name in str(caught.value)
    assert all(r.choices[0].finish_reason in ("stop", "length") and r.choices[0].message.content for r in replies)
    assert http.get("/healthz").status_code == 200 and http.get("/readyz").status_code == 200
    after = victim(0)
    assert after.choices[0].message.content == replies[0].choices[0].message.content
