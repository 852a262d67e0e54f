"""Building Mods guide — Per-request State + "Replace a phrase before generation"."""

from dataclasses import dataclass

from quote_mod_sdk import Prefilled, mod


@dataclass
class State:
    accum_text: str = ""
    last_logits = None


states: dict[str, State] = {}


def get_state(rid: str) -> State:
    st = states.get(rid)
    if st is None:
        st = State()
        states[rid] = st
    return st


@mod
def replace_phrase(event, actions, tokenizer):
    # Replace a phrase before generation
    if isinstance(event, Prefilled):
        prompt = tokenizer.decode(event.context_info.tokens[: event.context_info._prompt_len])
        new = prompt.replace("Say hi.", "Say bye.")
        return actions.adjust_prefill(tokenizer.encode(new, add_special_tokens=False))
    return actions.noop()
