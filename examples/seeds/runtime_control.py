"""Platform overview — Mod Hook."""

from quote_mod_sdk import ActionBuilder, Added, ForwardPass, Prefilled, mod


@mod
def runtime_control(event, actions: ActionBuilder, tokenizer):
    if isinstance(event, (Prefilled, ForwardPass, Added)):
        return actions.noop()
    return actions.noop()
