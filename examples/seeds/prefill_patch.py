"""Platform overview — Adjust Prefill."""

from quote_mod_sdk import ActionBuilder, Prefilled, mod


@mod
def patch_prefill(event, actions: ActionBuilder, tokenizer):
    if isinstance(event, Prefilled):
        replacement = "System: answer concisely\n" + event.prefilled_text
        return actions.adjust_prefill(
            tokenizer.encode(replacement)
        )
    return actions.noop()
