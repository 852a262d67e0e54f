"""The tour's mods: effects that only show on a trained model (`examples/tour/tour.py`, tests/real_model).

capital      a Flow classifier: the model picks the capital among fixed choices; the answer is the output
no_paris     bans the word "Paris" (every token that spells it or starts it) on every step
city_light   backtracks over " Paris" as soon as it appears and writes " the City of Light" instead
weather_tool a Flow whose free-text answer (the city) becomes a tool call's JSON arguments
capital_json the capital, constrained to letters, returned as a JSON object
"""

from __future__ import annotations

import json
from typing import Any

from quote_mod_sdk import Added, Finished, ForwardPass, mod
from quote_mod_sdk.flow import FlowEngine, FlowQuestion, route_output, route_tool
from quote_mod_sdk.strategies.primitives import CharsMode
from quote_mod_sdk.strategies.strategy_constructor import CharsStrat

CAPITALS = ["London", "Berlin", "Paris", "Madrid", "Rome"]

_capital_q = FlowQuestion(
    name="capital",
    prompt="The capital is:",
    responses=CAPITALS,  # no shared leading space: a forced lone " " token would derail the model
    erase_mode="all",
)
_capital_q.then(route_output(lambda v: str(v["capital"]).strip()))
CAPITAL = FlowEngine(_capital_q)


@mod
def capital(event, actions, tokenizer):  # type: ignore[no-untyped-def]
    return CAPITAL.handle_event(event, actions, tokenizer)


_banned: dict[int, list[int]] = {}  # id(tokenizer) → the token ids that spell or start "Paris"


def _paris_tokens(tokenizer: Any) -> list[int]:
    key = id(tokenizer)
    if key not in _banned:
        ids = []
        for token_id in range(len(tokenizer)):
            text = tokenizer.decode([token_id]).strip().lower()
            if len(text) >= 2 and ("paris" in text or "paris".startswith(text)):
                ids.append(token_id)
        _banned[key] = ids
    return _banned[key]


@mod(max_backtrack=0)
def no_paris(event, actions, tokenizer):  # type: ignore[no-untyped-def]
    if isinstance(event, ForwardPass):
        row = event.logits.clone()
        row[_paris_tokens(tokenizer)] = -1e9
        return actions.adjust_logits(row)
    return None


_texts: dict[str, str] = {}


@mod(max_backtrack=8)
def city_light(event, actions, tokenizer):  # type: ignore[no-untyped-def]
    if isinstance(event, Added):
        text = _texts.get(event.request_id, "") + tokenizer.decode(event.added_tokens)
        _texts[event.request_id] = text
        if not event.forced and text.endswith(" Paris"):
            erase = len(tokenizer.encode(" Paris", add_special_tokens=False))
            _texts[event.request_id] = text[: -len(" Paris")] + " the City of Light"
            return actions.backtrack(erase, tokenizer.encode(" the City of Light", add_special_tokens=False))
    if isinstance(event, Finished):
        _texts.pop(event.request_id, None)
    return None


_city_q = FlowQuestion(
    name="city",
    prompt='Calling get_weather({"city": "',
    strategy=CharsStrat(CharsMode.ALPHA, stop='"', min_chars=1, max_chars=40),
    erase_mode="all",
)
_city_q.then(route_tool("get_weather", lambda v: {"city": v["city"]}))
WEATHER = FlowEngine(_city_q)


@mod
def weather_tool(event, actions, tokenizer):  # type: ignore[no-untyped-def]
    return WEATHER.handle_event(event, actions, tokenizer)


_json_q = FlowQuestion(
    name="capital",
    prompt='{"capital": "',
    strategy=CharsStrat(CharsMode.ALPHA, stop='"', min_chars=1, max_chars=40),
    erase_mode="all",
)
_json_q.then(route_output(lambda v: json.dumps({"capital": v["capital"]})))
CAPITAL_JSON = FlowEngine(_json_q)


@mod
def capital_json(event, actions, tokenizer):  # type: ignore[no-untyped-def]
    return CAPITAL_JSON.handle_event(event, actions, tokenizer)
