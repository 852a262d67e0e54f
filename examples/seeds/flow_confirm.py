"""Building Mods guide — Flows (multi-step)."""

from quote_mod_sdk import mod
from quote_mod_sdk.flow import FlowEngine, FlowQuestion, route_message, route_question  # noqa: F401
from quote_mod_sdk.strategies.strategy_constructor import ChoicesStrat

q = FlowQuestion(name="confirm", prompt=" Proceed? (yes/no): ", strategy=ChoicesStrat(["yes", "no"]))
q.on("yes", route_message("Ok!"))
ENGINE = FlowEngine(entry_question=q)


@mod
def flow_mod(event, actions, tokenizer):
    return ENGINE.handle_event(event, actions, tokenizer)
