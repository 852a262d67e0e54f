"""SelfPrompt with the original SDK's options: optional prompt, argmax_sampling, mask_value,
refresh_responses, idempotent Prefilled, masking (not forcing) a lone continuation, and
EraseMode.ALL backtracking right after the answer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from quote_mod_sdk.actions import ActionBuilder, AdjustLogits, Backtrack, ForceTokens, Noop
from quote_mod_sdk.events import Added, ForwardPass, Prefilled
from quote_mod_sdk.self_prompt import EraseMode, SelfPrompt
from quote_mod_sdk.strategies.strategy_constructor import ChoicesStrat, ListStrat

from .test_original_strategies import CharTokenizer

TOK = CharTokenizer()
V = 128


class Logits:
    """A tensor-like with to_numpy()/from_numpy(), as the original's tests use."""

    def __init__(self, arr: np.ndarray) -> None:
        self.arr = arr

    def to_numpy(self) -> np.ndarray:
        return self.arr

    @classmethod
    def from_numpy(cls, arr: np.ndarray) -> Logits:
        return cls(np.array(arr, copy=True))


def forward(sp: SelfPrompt, rid: str, step: int, logits: Any = None) -> Any:
    event = ForwardPass(rid, step, np.zeros(V, dtype=np.float32) if logits is None else logits)
    return sp.handle_forward_pass(event, ActionBuilder(event), TOK)


def added(sp: SelfPrompt, rid: str, step: int, text: str, forced: bool) -> None:
    event = Added(rid, step, TOK.encode(text), forced)
    sp.handle_added(event, ActionBuilder(event), TOK)


def allowed(action: Any) -> set[str]:
    assert isinstance(action, AdjustLogits)
    row = action.logits.to_numpy() if hasattr(action.logits, "to_numpy") else np.asarray(action.logits)
    return {chr(i) for i in np.flatnonzero(row > -1e8)}


def test_prompt_is_optional_and_a_lone_choice_is_masked_not_forced() -> None:
    sp = SelfPrompt(strategy=ChoicesStrat(["ok"]))
    sp.handle_prefilled(Prefilled("r", 0, 8), TOK)
    assert allowed(forward(sp, "r", 1)) == {"o"}
    added(sp, "r", 1, "o", False)
    assert allowed(forward(sp, "r", 2)) == {"k"}
    added(sp, "r", 2, "k", False)
    assert sp.is_complete("r") and sp.answer("r") == "ok"
    forcing = SelfPrompt(strategy=ChoicesStrat(["ok"]), force_literals=True)
    action = forward(forcing, "s", 1)
    assert isinstance(action, ForceTokens) and action.tokens == TOK.encode("ok")


def test_argmax_sampling_mask_value_and_tensor_type_kept() -> None:
    sp = SelfPrompt(prompt=None, strategy=ChoicesStrat(["a", "b"]), argmax_sampling=True, mask_value=-1e9)
    action = forward(sp, "r", 1, Logits(np.zeros(V, dtype=np.float32)))
    assert isinstance(action, AdjustLogits) and action.token_temp == 0.0
    assert isinstance(action.logits, Logits)
    row = action.logits.to_numpy()
    assert row[ord("a")] == 0.0 and row[ord("c")] == -1e9
    plain = SelfPrompt(strategy=ChoicesStrat(["a", "b"]))
    action = forward(plain, "r", 1)
    assert isinstance(action, AdjustLogits) and action.token_temp is None and np.isneginf(action.logits[ord("c")])


def test_prefilled_is_idempotent_within_a_request_and_restarts_a_reused_id() -> None:
    sp = SelfPrompt(prompt="Q:", strategy=ChoicesStrat(["A", "B"]))
    sp.handle_prefilled(Prefilled("r", 0, 8), TOK)
    assert isinstance(forward(sp, "r", 1), ForceTokens)
    added(sp, "r", 1, "Q:", True)
    sp.handle_prefilled(Prefilled("r", 2, 8), TOK)  # the original's per-cycle Prefilled
    assert allowed(forward(sp, "r", 2)) == {"A", "B"}
    sp.handle_prefilled(Prefilled("r", 0, 8), TOK)  # a new request with the same id
    assert isinstance(forward(sp, "r", 1), ForceTokens)


def test_refresh_responses_on_choices_and_on_a_list_element() -> None:
    sp = SelfPrompt(strategy=ListStrat([ChoicesStrat(["cat", "dog"])]))
    sp.handle_prefilled(Prefilled("r", 0, 8), TOK)
    assert allowed(forward(sp, "r", 1)) == {"c", "d"}
    sp.refresh_responses(["owl"], request_id="r", idx=0)
    assert allowed(forward(sp, "r", 1)) == {"o"}
    single = SelfPrompt(strategy=ChoicesStrat(["x"]))
    single.refresh_responses(["y", "z"])
    assert allowed(forward(single, "q", 1)) == {"y", "z"}
    untouched = SelfPrompt(strategy=ListStrat([ChoicesStrat(["x"])]))
    before = untouched.strategy
    untouched.refresh_responses(["y"], idx=3)  # no such element: nothing changes
    assert untouched.strategy is before


@pytest.mark.parametrize("suffix", [None, "\n"])
def test_erase_all_backtracks_right_after_the_answer(suffix: str | None) -> None:
    sp = SelfPrompt(prompt="P", strategy=ChoicesStrat(["Z"]), completion=suffix, erase=EraseMode.ALL)
    sp.handle_prefilled(Prefilled("r", 0, 8), TOK)
    assert isinstance(forward(sp, "r", 1), ForceTokens)
    added(sp, "r", 1, "P", True)
    assert allowed(forward(sp, "r", 2)) == {"Z"}
    added(sp, "r", 2, "Z", False)
    action = forward(sp, "r", 3)
    assert isinstance(action, Backtrack) and action.n == 2 and action.reinject_tokens is None
    assert isinstance(forward(sp, "r", 4), Noop)


def test_erase_prompt_forces_the_suffix_then_erases_it_with_the_prompt() -> None:
    sp = SelfPrompt(prompt="Q:", strategy=ChoicesStrat(["Y"]), completion="\n", erase=EraseMode.PROMPT)
    forward(sp, "r", 1)
    added(sp, "r", 1, "Q:", True)
    forward(sp, "r", 2)
    added(sp, "r", 2, "Y", False)
    action = forward(sp, "r", 3)
    assert isinstance(action, ForceTokens) and action.tokens == TOK.encode("\n")
    added(sp, "r", 3, "\n", True)
    action = forward(sp, "r", 4)
    assert isinstance(action, Backtrack) and action.n == 4  # Q : Y and the suffix
    assert action.tokens == TOK.encode("Y")  # the answer alone comes back
