"""Building Mods guide — Skeleton."""

from quote_mod_sdk import Added, ForwardPass, Prefilled, mod


@mod
def my_mod(event, actions, tokenizer):
    if isinstance(event, Prefilled):
        return actions.noop()
    if isinstance(event, ForwardPass):
        return actions.noop()
    if isinstance(event, Added):
        return actions.noop()
    return actions.noop()
