"""Building Mods guide — Constrained Generation, imperative `SelfPrompt`."""

from quote_mod_sdk import Added, ForwardPass, Prefilled, mod
from quote_mod_sdk.self_prompt import SelfPrompt
from quote_mod_sdk.strategies.primitives import UntilEndType
from quote_mod_sdk.strategies.strategy_constructor import UntilStrat

sp = SelfPrompt(
    prompt={"text": " Wrap a question in <question_to_user> tags: "},
    strategy=UntilStrat("<question_to_user>", UntilEndType.TAG, "</question_to_user>"),
)


@mod
def question_tags(event, actions, tokenizer):
    if isinstance(event, Prefilled):
        sp.handle_prefilled(event, tokenizer); return actions.noop()
    if isinstance(event, ForwardPass):
        return sp.handle_forward_pass(event, actions, tokenizer)
    if isinstance(event, Added):
        sp.handle_added(event, actions, tokenizer); return actions.noop()
    return actions.noop()
