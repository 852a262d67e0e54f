"""SelfPrompt: the model prompts itself mid-generation and answers under a strategy's constraint.

Per request, a SelfPrompt moves through phases, acting only on ForwardPass (where forcing,
masking and backtracking are all legal) and learning what happened from Added:

    prompt  → force the prompt text into the output
    answer  → mask logits with the strategy (or force its literals) until the answer is complete
    suffix  → force the completion suffix (e.g. "\\n"), if configured
    erase   → backtrack over prompt (EraseMode.PROMPT, reinjecting the answer alone) or everything (ALL)
    done    → no-op; the model carries on
"""

from __future__ import annotations

import dataclasses
import enum
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quote_mod_sdk.actions import Action, ActionBuilder, Backtrack, ForceTokens
from quote_mod_sdk.errors import StrategyError
from quote_mod_sdk.events import Added, Finished, ForwardPass, Prefilled
from quote_mod_sdk.mod import Mod
from quote_mod_sdk.strategies.base import Strategy, StrategyRun
from quote_mod_sdk.strategies.custom import ProtocolRun, is_strategy_like, start_run
from quote_mod_sdk.strategies.strategy_constructor import StrategyConstructor
from quote_mod_sdk.tensor import to_numpy

__all__ = ["EraseMode", "SelfPrompt", "self_prompt_mod"]

_MAX_STRATEGY_BACKTRACKS = 3  # as in the original: a strategy that keeps backtracking is stopped


class EraseMode(enum.Enum):
    """What to erase from the output once the self-prompt is answered."""

    NONE = "none"
    PROMPT = "prompt"
    ALL = "all"

    @classmethod
    def coerce(cls, value: EraseMode | str | None) -> EraseMode:
        if value is None:
            return cls.NONE
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            raise StrategyError(f"erase mode must be one of none/prompt/all, got {value!r}") from None


@dataclass
class _Run:
    """One request's progress through a SelfPrompt."""

    strategy: StrategyRun | ProtocolRun
    phase: str = "prompt"
    expect: list[int] | None = None  # tokens we forced and expect back in Added
    expect_kind: str = ""
    span: int = 0  # output tokens since the self-prompt began (what erasing removes)
    answer_tokens: list[int] = field(default_factory=list)
    error: str | None = None
    strategy_backtracks: int = 0  # backtracks a runtime-protocol strategy asked for

    # The original SDK's names for this progress, read by its users' tests through `_states`.
    @property
    def compiled(self) -> StrategyRun | ProtocolRun:
        return self.strategy

    @property
    def prompt_emitted(self) -> bool:
        return self.phase != "prompt"

    @property
    def outstanding_forced(self) -> int:
        return len(self.expect or ())

    @property
    def completed(self) -> bool:
        return self.phase == "done"


def _text_of(prompt: str | Mapping[str, Any]) -> str:
    if isinstance(prompt, Mapping):
        return str(prompt.get("text", ""))
    return str(prompt)


class SelfPrompt:
    """Construct once (module level), then forward a mod's events to it; state is per request."""

    def __init__(
        self,
        prompt: str | Mapping[str, Any] | None = None,
        strategy: Strategy | StrategyConstructor | None = None,
        completion: str | Mapping[str, Any] | None = None,
        erase: EraseMode | str | None = EraseMode.NONE,
        argmax_sampling: bool = False,
        mask_value: float = float("-inf"),
        force_literals: bool = False,
    ) -> None:
        # Ours, or the original SDK's extension point: a StrategyConstructor or a runtime-protocol
        # strategy (start/allowed_tokens/step/is_complete), run through strategies.custom.
        if strategy is None or not is_strategy_like(strategy):
            raise StrategyError(f"SelfPrompt needs a strategy, got {strategy!r}")
        self.prompt_text = _text_of(prompt) if prompt is not None else ""
        self.strategy = strategy
        self.argmax_sampling = bool(argmax_sampling)  # masked steps also ask for greedy sampling
        self.mask_value = float(mask_value)  # the logit given to disallowed tokens
        # When only one continuation exists (a tag, a separator, a lone choice): force it in one
        # step (force_literals=True) or mask down to it token by token (the default, as the
        # original SDK does, so the model still samples and Added reports sampled tokens).
        self.force_literals = bool(force_literals)
        if isinstance(completion, str):
            completion = {"suffix": completion, "force": True}
        completion = completion or {}
        self.suffix = str(completion.get("suffix") or "")
        self.force_suffix = bool(completion.get("force", True)) and bool(self.suffix)
        self.erase = EraseMode.coerce(erase)
        self._runs: dict[str, _Run] = {}
        self._torch_masks: dict[int, tuple[np.ndarray, Any]] = {}

    # ----- the three handlers of the documented API -------------------------------------------
    def handle_prefilled(self, event: Prefilled, tokenizer: Any) -> None:
        """Start this request's run. Idempotent: a run already under way is kept, unless this is
        a step-0 prefill (a new request reusing the id) after the run made progress."""
        run = self._runs.get(event.request_id)
        if run is None or (event.step == 0 and (run.span > 0 or run.phase == "done")):
            self.start(event.request_id, tokenizer)

    def refresh_responses(
        self, responses: Sequence[str] | None, request_id: str | None = None, idx: int | None = None
    ) -> None:
        """Replace the choices of a `ChoicesStrat` strategy, or of the list element `idx` (or the
        list's one element) of a `ListStrat` of choices; with `request_id`, that request starts
        over with the new choices on its next event. Other strategies are left unchanged."""
        values = [str(v) for v in (responses or [])]
        new = _with_choices(self.strategy, values, idx)
        if new is None:
            return
        self.strategy = new
        if isinstance(request_id, str):
            self._runs.pop(request_id, None)

    def handle_forward_pass(self, event: ForwardPass, actions: ActionBuilder, tokenizer: Any) -> Action:
        run = self._runs.get(event.request_id) or self.start(event.request_id, tokenizer)
        if run.error:
            return actions.emit_error(f"self-prompt failed: {run.error}")
        if run.phase == "prompt":
            return self._force(run, "prompt", tokenizer.encode(self.prompt_text, add_special_tokens=False), actions)
        if run.phase == "answer":
            return self._answer_step(run, event, actions, tokenizer)
        if run.phase == "suffix":
            return self._force(run, "suffix", tokenizer.encode(self.suffix, add_special_tokens=False), actions)
        if run.phase == "erase":
            return self._erase(run, actions)
        return actions.noop()

    def handle_added(self, event: Added, actions: ActionBuilder, tokenizer: Any) -> Action:
        run = self._runs.get(event.request_id)
        if run is None or run.phase == "done":
            return actions.noop()
        tokens = list(event.added_tokens)
        run.span += len(tokens)
        if run.expect is not None and event.forced and tokens == run.expect:
            kind, run.expect = run.expect_kind, None
            if kind != "answer":  # forced answer literals (tags, separators) feed the strategy below
                return actions.noop()
        if run.phase == "answer":
            self._feed_answer(run, tokens)
            return self._strategy_action(run, actions)
        return actions.noop()

    # ----- state queries ------------------------------------------------------------------------
    @property
    def _states(self) -> dict[str, _Run]:
        """Request id → run; the original SDK's attribute, which its users' tests inspect."""
        return self._runs

    def start(self, request_id: str, tokenizer: Any) -> _Run:
        """(Re)start this self-prompt for a request; flows call it to ask a question again."""
        run = _Run(start_run(self.strategy, tokenizer))
        if not self.prompt_text:
            run.phase = "answer"
        self._runs[request_id] = run
        return run

    def is_complete(self, request_id: str) -> bool:
        """The answer is complete (the suffix/erase may still be pending)."""
        run = self._runs.get(request_id)
        return run is not None and run.phase in ("suffix", "erase", "done")

    def is_finished(self, request_id: str) -> bool:
        """Answered, suffix forced and erasing done: the self-prompt will do nothing more."""
        run = self._runs.get(request_id)
        return run is not None and run.phase == "done"

    def answer(self, request_id: str) -> Any:
        run = self._runs.get(request_id)
        return None if run is None or not self.is_complete(request_id) else run.strategy.answer

    def answer_tokens(self, request_id: str) -> list[int]:
        run = self._runs.get(request_id)
        return [] if run is None else list(run.answer_tokens)

    def error(self, request_id: str) -> str | None:
        run = self._runs.get(request_id)
        return None if run is None else run.error

    def forget(self, request_id: str) -> None:
        self._runs.pop(request_id, None)

    # ----- phases --------------------------------------------------------------------------------
    def _force(self, run: _Run, kind: str, tokens: list[int], actions: ActionBuilder) -> Action:
        run.expect, run.expect_kind = tokens, kind
        run.phase = {"prompt": "answer", "suffix": "erase", "answer": "answer"}[kind]
        if not tokens:  # an empty literal: nothing to force, move on
            run.expect = None
            return actions.noop()
        return actions.force_tokens(tokens)

    def _answer_step(self, run: _Run, event: ForwardPass, actions: ActionBuilder, tokenizer: Any) -> Action:
        strategy = run.strategy
        if not strategy.is_complete:
            if self.force_literals and strategy.forced_text():
                # forced_tokens() spells the literal exactly (encode() may add a leading space marker)
                return self._force(run, "answer", list(strategy.forced_tokens() or []), actions)
            mask = strategy.allowed_mask()
            if not (strategy.accepting and self._prefers_stop(event.logits, mask, tokenizer)):
                if not mask.any():
                    return actions.emit_error("self-prompt strategy has no valid continuation")
                masked = self._masked(event.logits, mask)
                return actions.adjust_logits(masked, 0.0 if self.argmax_sampling else None)
        run.phase = self._after_answer()
        return self.handle_forward_pass(event, actions, tokenizer)

    def _after_answer(self) -> str:
        # As in the original SDK: with EraseMode.ALL the suffix would be erased at once, so the
        # backtrack comes right after the answer; a list with its own `end_with` needs no suffix.
        ends_itself = bool(getattr(self.strategy, "end_with", ""))
        return "suffix" if self.force_suffix and self.erase is not EraseMode.ALL and not ends_itself else "erase"

    def _feed_answer(self, run: _Run, tokens: list[int]) -> None:
        run.answer_tokens.extend(tokens)
        self._advance(run, tokens)
        if run.error is None and run.strategy.is_complete:
            run.phase = self._after_answer()

    def _advance(self, run: _Run, tokens: list[int]) -> None:
        try:
            run.strategy.advance(tokens)
        except StrategyError as exc:
            run.error = str(exc)

    def _strategy_action(self, run: _Run, actions: ActionBuilder) -> Action:
        """What a runtime-protocol strategy's `step` asked for, returned from Added as the original
        does; it may ask for at most 3 backtracks per run (then they are ignored, as there)."""
        take = getattr(run.strategy, "take_action", None)
        action = take() if callable(take) else None
        if isinstance(action, Backtrack):
            run.strategy_backtracks += 1
            if run.strategy_backtracks > _MAX_STRATEGY_BACKTRACKS:
                return actions.noop()
            run.span += len(action.tokens or ()) - min(action.n, run.span)
            return actions.backtrack(action.n, action.tokens or None)
        if isinstance(action, ForceTokens) and action.tokens:
            run.span += len(action.tokens)  # they get no Added of their own: count them here
            return actions.force_tokens(action.tokens)
        return actions.noop()

    def _erase(self, run: _Run, actions: ActionBuilder) -> Action:
        run.phase = "done"
        if self.erase is EraseMode.ALL:
            return actions.backtrack(run.span)
        if self.erase is EraseMode.PROMPT:
            # As in the original SDK: prompt, answer and suffix go; only the answer comes back.
            return actions.backtrack(run.span, run.answer_tokens)
        return actions.noop()

    # ----- logits helpers ------------------------------------------------------------------------
    def _prefers_stop(self, logits: Any, mask: np.ndarray, tokenizer: Any) -> bool:
        """At an answer that is complete but could go on ("A" vs "AB"), let the model decide."""
        if not mask.any():
            return True
        row = to_numpy(logits).reshape(-1)
        enders = [getattr(tokenizer, "eos_token_id", None)]
        if self.suffix:
            enders += tokenizer.encode(self.suffix, add_special_tokens=False)[:1]
        end_scores = [row[t] for t in enders if isinstance(t, int) and 0 <= t < row.shape[0]]
        go_on = row[: mask.shape[0]][mask].max()
        return bool(end_scores) and max(end_scores) >= go_on

    def _masked(self, logits: Any, mask: np.ndarray) -> Any:
        if hasattr(logits, "masked_fill"):
            return logits.masked_fill(~self._torch_mask(mask, logits), self.mask_value)
        # A tensor-like with to_numpy()/from_numpy() (the original SDK's style) keeps its type.
        own = not isinstance(logits, np.ndarray) and callable(getattr(logits, "to_numpy", None))
        source = logits.to_numpy() if own else logits
        row = np.array(source, dtype=np.float32, copy=True).reshape(-1)
        full = np.zeros(row.shape[0], dtype=bool)
        full[: mask.shape[0]] = mask[: row.shape[0]]
        row[~full] = self.mask_value
        from_numpy = getattr(type(logits), "from_numpy", None) if own else None
        return from_numpy(row) if callable(from_numpy) else row

    def _torch_mask(self, mask: np.ndarray, logits: Any) -> Any:
        """Strategy masks are long-lived arrays; convert each to a device tensor once."""
        import torch

        cached = self._torch_masks.get(id(mask))
        if cached is not None and cached[0] is mask and cached[1].device == logits.device:
            tensor = cached[1]
        else:
            tensor = torch.zeros(logits.shape[-1], dtype=torch.bool)
            n = min(mask.shape[0], logits.shape[-1])
            tensor[:n] = torch.from_numpy(np.array(mask[:n]))  # a writable copy: strategy masks are read-only
            tensor = tensor.to(logits.device)
            if len(self._torch_masks) > 4096:
                self._torch_masks.clear()
            self._torch_masks[id(mask)] = (mask, tensor)
        return tensor


def _with_choices(spec: object, values: list[str], idx: int | None) -> Strategy | None:
    """`spec` with new choices (see `SelfPrompt.refresh_responses`), or None when it has none."""
    from quote_mod_sdk.strategies.strategy_constructor import ChoicesStrat, ListStrat

    if isinstance(spec, ChoicesStrat):
        return ChoicesStrat(values)
    if not isinstance(spec, ListStrat):
        return None
    elems = list(spec.items or (spec.item,))
    k = 0 if idx is None else idx
    if not 0 <= k < len(elems) or not isinstance(elems[k], ChoicesStrat):
        return None
    elems[k] = ChoicesStrat(values)
    new = object.__new__(ListStrat)
    for f in dataclasses.fields(spec):
        object.__setattr__(new, f.name, getattr(spec, f.name))
    object.__setattr__(new, "item", elems[0])
    object.__setattr__(new, "items", tuple(elems) if spec.items else ())
    return new


def self_prompt_mod(
    prompt: str | Mapping[str, Any],
    strategy: Strategy | StrategyConstructor,
    completion: str | Mapping[str, Any] | None = None,
    erase: EraseMode | str | None = EraseMode.NONE,
    *,
    name: str = "self_prompt",
) -> Mod:
    """A ready mod that runs one SelfPrompt at the start of every request's output."""
    sp = SelfPrompt(prompt=prompt, strategy=strategy, completion=completion, erase=erase)

    def handler(event: Any, actions: ActionBuilder, tokenizer: Any) -> Action:
        if isinstance(event, Prefilled):
            sp.handle_prefilled(event, tokenizer)
        elif isinstance(event, ForwardPass):
            return sp.handle_forward_pass(event, actions, tokenizer)
        elif isinstance(event, Added):
            return sp.handle_added(event, actions, tokenizer)
        elif isinstance(event, Finished):
            sp.forget(event.request_id)
        return actions.noop()

    built = Mod(handler, name=name)
    built.self_prompt = sp  # type: ignore[attr-defined]
    # Like namedtuple: the mod belongs to the module that built it, so serialize_mod bundles that one.
    built.__module__ = sys._getframe(1).f_globals.get("__name__", __name__)
    return built
