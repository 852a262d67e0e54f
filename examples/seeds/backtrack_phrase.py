"""Building Mods guide — "Backtrack and replace text"."""

from dataclasses import dataclass

from quote_mod_sdk import Added, mod


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
def backtrack_phrase(event, actions, tokenizer):
    # Backtrack and replace text
    if isinstance(event, Added):
        st = get_state(event.request_id)
        st.accum_text += tokenizer.decode(event.added_tokens)
        needle = " I can't help with that"
        if st.accum_text.endswith(needle):
            return actions.backtrack(
                len(tokenizer.encode(needle, add_special_tokens=False)),
                tokenizer.encode("I can help you with that: "),
            )
    return actions.noop()
