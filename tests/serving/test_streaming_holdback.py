"""Streaming never shows a client text that a mod later erases."""

from __future__ import annotations

import json
import textwrap

import httpx
import openai
import pytest

MODEL = "quote-tiny"

REWRITER = """
from quote_mod_sdk import mod, Added

@mod(max_backtrack=4)
def rewriter(event, actions, tokenizer):
    if isinstance(event, Added) and not event.forced and event.step % 5 == 0:
        return actions.backtrack(3, tokenizer.encode(" ok", add_special_tokens=False))
"""

LIAR = """
from quote_mod_sdk import mod, Added

@mod(max_backtrack=1)
def liar(event, actions):
    if isinstance(event, Added) and not event.forced and event.step == 12:
        return actions.backtrack(6)
"""


@pytest.fixture(scope="module", autouse=True)
def mods(http: httpx.Client) -> None:
    for name, source in [("rewriter", REWRITER), ("liar", LIAR)]:
        payload = {
            "language": "python",
            "module": name,
            "entrypoint": name,
            "source": textwrap.dedent(source),
            "name": name,
        }
        assert http.post("/v1/mods", json=payload).status_code in (200, 201)


def sse_contents(http: httpx.Client, body: dict) -> list[str]:  # type: ignore[type-arg]
    pieces = []
    with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                assert "error" not in chunk, chunk
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    pieces.append(chunk["choices"][0]["delta"]["content"])
    return pieces


def test_streamed_text_is_never_taken_back(http: httpx.Client) -> None:
    body = {
        "model": f"{MODEL}/rewriter",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 60,
        "temperature": 0,
    }
    response = http.post("/v1/chat/completions", json=body).json()
    final = response["choices"][0]["message"]["content"]
    assert any(t["erased"] for t in http.get(f"/v1/traces/{response['id']}").json()["tokens"])
    pieces = sse_contents(http, body)
    assert len(pieces) > 3, "text must flow while generating, not only at the end"
    assert "".join(pieces) == final
    seen = ""
    for piece in pieces:
        seen += piece
        assert final.startswith(seen)


def test_backtracking_past_the_declared_bound_ends_the_stream_with_an_error(openai_client) -> None:  # type: ignore[no-untyped-def]
    stream = openai_client.chat.completions.create(
        model=f"{MODEL}/liar", messages=[{"role": "user", "content": "Hi"}], max_tokens=40, temperature=0, stream=True
    )
    with pytest.raises(openai.APIError, match="max_backtrack"):
        list(stream)
