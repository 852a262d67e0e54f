"""Platform overview — Backtrack."""

from quote_mod_sdk import ActionBuilder, Added, mod


@mod
def revise_suffix(event, actions: ActionBuilder, tokenizer):
    if isinstance(event, Added) and event.step > 30:
        replacement = tokenizer.encode("Let's restate clearly:")
        return actions.backtrack(n=8, replacement=replacement)
    return actions.noop()
