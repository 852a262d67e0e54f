"""A short tour: what mods do to a trained model, in six requests with the openai client.

    .venv/bin/quote serve            # in one terminal (SmolLM2-135M-Instruct, the default)
    .venv/bin/python examples/tour/tour.py [http://127.0.0.1:8000]

The mods live in tour_mods.py next to this file; each is registered over HTTP, then picked by
suffixing the model name (`smollm2/<mod>`). Greedy decoding, so every run prints the same text.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tour_mods

from quote_mod_sdk import serialize_mod

MODS = ("no_paris", "city_light", "capital", "weather_tool", "capital_json")


def main(base: str = "http://127.0.0.1:8000", out: Callable[..., Any] = print) -> None:
    for name in MODS:
        httpx.post(f"{base}/v1/mods", json=serialize_mod(getattr(tour_mods, name), name=name)).raise_for_status()
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="dev")

    def ask(model: str, question: str) -> Any:
        messages = [{"role": "user", "content": question}]
        return client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=48).choices[0]

    france = "What is the capital of France?"
    out("plain       :", ask("smollm2", france).message.content)
    out("no_paris    :", ask("smollm2/no_paris", france).message.content)  # the word is banned
    out("city_light  :", ask("smollm2/city_light", france).message.content)  # backtracked and rewritten
    out("capital     :", ask("smollm2/capital", "What is the capital of Germany?").message.content)  # a classifier
    call = ask("smollm2/weather_tool", "What is the weather like in Tokyo today?").message.tool_calls[0]
    out("weather_tool:", call.function.name, call.function.arguments)  # a flow that calls a tool
    out("capital_json:", ask("smollm2/capital_json", "What is the capital of Spain?").message.content)


if __name__ == "__main__":
    main(*sys.argv[1:2])
