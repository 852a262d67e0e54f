"""Building Mods guide — "Mask a token each step" (max.driver's Tensor → quote_mod_sdk.tensor)."""

from quote_mod_sdk import ForwardPass, mod


@mod
def ban_em_dash(event, actions, tokenizer):
    # Mask a token each step
    if isinstance(event, ForwardPass):
        import numpy as np  # noqa: F401 - as in the guide
        from quote_mod_sdk.tensor import Tensor

        logits = event.logits.to_numpy()
        ban = tokenizer.encode("—", add_special_tokens=False)[0]
        logits[ban] = -1e9
        return actions.adjust_logits(Tensor.from_numpy(logits))
    return actions.noop()
