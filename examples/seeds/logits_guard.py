"""Platform overview — Adjust Logits."""

from quote_mod_sdk import ActionBuilder, ForwardPass, mod


@mod
def logits_guard(event, actions: ActionBuilder, tokenizer):
    if isinstance(event, ForwardPass):
        logits = event.logits.clone()
        blocked = tokenizer.encode("unsafe")[0]
        logits[blocked] = -1e9
        return actions.adjusted_logits(logits)
    return actions.noop()
