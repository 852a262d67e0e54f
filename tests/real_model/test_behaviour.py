"""Interventions do what users want on a trained model, through the real `openai` client.

Each test has a control: without the mod the model does the thing the mod changes, so a mod that
did nothing would fail the test.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from examples.tour import tour_mods as mods
from quote_mod_sdk import serialize_mod
from tests.real_model.conftest import MODEL

pytestmark = pytest.mark.real_model

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module", autouse=True)
def registered(http: httpx.Client) -> None:
    for name in ("capital", "no_paris", "city_light", "weather_tool", "capital_json"):
        response = http.post("/v1/mods", json=serialize_mod(getattr(mods, name), name=name))
        assert response.status_code in (200, 201), response.text


def ask(
    client: openai.OpenAI, model: str, messages: list[dict[str, str]], **kw: object
) -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(model=model, messages=messages, **{"temperature": 0, "max_tokens": 48, **kw})  # type: ignore[call-overload,no-any-return]


def test_the_default_model_is_the_trained_one_and_answers_sensibly(client: openai.OpenAI) -> None:
    assert client.models.list().data[0].id == MODEL
    # As a newcomer asks: no temperature, so the model's own sampling defaults apply (not 1.0).
    answers = [client.chat.completions.create(model=MODEL, messages=FRANCE, max_tokens=32, seed=s) for s in range(3)]
    for reply in answers:
        assert "Paris" in (reply.choices[0].message.content or ""), reply
        assert reply.choices[0].finish_reason == "stop"  # its own stop token ends the turn


@pytest.mark.parametrize(
    ("country", "capital"), [("France", "Paris"), ("Germany", "Berlin"), ("Spain", "Madrid"), ("England", "London")]
)
def test_a_flow_classifier_picks_the_right_choice(client: openai.OpenAI, country: str, capital: str) -> None:
    messages = [{"role": "user", "content": f"What is the capital of {country}?"}]
    reply = ask(client, f"{MODEL}/capital", messages)
    assert reply.choices[0].message.content == capital


def test_a_banned_word_never_appears(client: openai.OpenAI) -> None:
    assert "paris" in (ask(client, MODEL, FRANCE).choices[0].message.content or "").lower()  # the control
    for messages in (FRANCE, [{"role": "user", "content": "Name the city with the Eiffel Tower, in one word."}]):
        text = ask(client, f"{MODEL}/no_paris", messages).choices[0].message.content or ""
        assert text.strip() and "paris" not in text.lower(), text


def test_a_backtrack_rewrites_the_answer_and_the_stream_never_shows_the_erased_word(client: openai.OpenAI) -> None:
    pieces = [
        chunk.choices[0].delta.content or ""
        for chunk in ask(client, f"{MODEL}/city_light", FRANCE, stream=True)
        if chunk.choices
    ]
    streamed = "".join(pieces)
    assert "the City of Light" in streamed and "Paris" not in streamed, pieces
    assert not any("Paris" in p for p in pieces)
    final = ask(client, f"{MODEL}/city_light", FRANCE).choices[0].message.content
    assert final == streamed  # streaming and not agree


@pytest.mark.parametrize("city", ["Tokyo", "Berlin"])
def test_a_tool_call_flow_produces_valid_arguments(client: openai.OpenAI, city: str) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    messages = [{"role": "user", "content": f"What is the weather like in {city} today?"}]
    reply = ask(client, f"{MODEL}/weather_tool", messages, tools=tools)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": city}


def test_a_json_constrained_answer_parses(client: openai.OpenAI) -> None:
    for country, capital in (("France", "Paris"), ("Spain", "Madrid")):
        messages = [{"role": "user", "content": f"What is the capital of {country}?"}]
        content = ask(client, f"{MODEL}/capital_json", messages).choices[0].message.content or ""
        assert json.loads(content) == {"capital": capital}


def test_ignore_eos_generates_exactly_max_tokens(client: openai.OpenAI, http: httpx.Client) -> None:
    stopped = ask(client, MODEL, FRANCE, max_tokens=40)
    assert stopped.choices[0].finish_reason == "stop" and stopped.usage and stopped.usage.completion_tokens < 40
    forced = ask(client, MODEL, FRANCE, max_tokens=40, extra_body={"ignore_eos": True})
    assert forced.choices[0].finish_reason == "length" and forced.usage and forced.usage.completion_tokens == 40
    bad = http.post("/v1/chat/completions", json={"model": MODEL, "messages": FRANCE, "ignore_eos": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "ignore_eos"
