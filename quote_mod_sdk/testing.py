"""Offline simulator: unit-test a mod without a GPU, a server or model weights.

It drives a mod through the same request loop the serving runtime uses
(`quote_mod_sdk.generation.Generation`), with a real tokenizer and a logits source that is a
pure function of the context — scripted ("the model wants to say this text") or seeded random —
so backtracking and recomputation behave like a real model's.

    sim = Simulator(tokenizer, ScriptedLogits(tokenizer, " I can't help with that"))
    result = sim.run(my_mod, "Say hi.")
    assert "can help you" in result.text
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from quote_mod_sdk.conversation import Message
from quote_mod_sdk.events import ModEvent
from quote_mod_sdk.generation import (
    Generation,
    GenerationParams,
    ModCall,
    RequestTrace,
    SamplePlan,
    call_mod,
)
from quote_mod_sdk.mod import ActionBuilder, Mod, as_mod
from quote_mod_sdk.tensor import to_numpy
from quote_mod_sdk.tokenizer import Tokenizer

__all__ = ["LogitsSource", "RandomLogits", "ScriptedLogits", "SimulationResult", "Simulator", "vocab_size_of"]


class LogitsSource(Protocol):
    """Next-token logits for a context (prompt + output so far)."""

    def __call__(self, context: Sequence[int], vocab_size: int) -> np.ndarray: ...


def vocab_size_of(tokenizer: Any) -> int:
    try:
        return len(tokenizer)
    except TypeError:
        return int(tokenizer.vocab_size)


def _context_rng(seed: int, context: Sequence[int]) -> np.random.Generator:
    digest = hashlib.blake2b(np.asarray(context, dtype=np.int64).tobytes(), key=str(seed).encode()[:64]).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


@dataclass
class RandomLogits:
    """Seeded random logits that depend on the whole context, like a real model's would."""

    seed: int = 0
    scale: float = 3.0
    banned: tuple[int, ...] = ()  # ids (e.g. special tokens) the "model" never proposes

    def __call__(self, context: Sequence[int], vocab_size: int) -> np.ndarray:
        logits = _context_rng(self.seed, context).standard_normal(vocab_size).astype(np.float32) * self.scale
        if self.banned:
            logits[list(self.banned)] = -1e9
        return logits


class ScriptedLogits:
    """A "model" that wants its output to read `script`, then to end (eos) or ramble.

    At each step it decodes the output so far; while that is a prefix of the script, the
    tokenizer's first token for the rest of the script gets a large margin over seeded random
    background logits. Text a mod forces is followed as long as the script contains it too;
    once the output diverges (a mod rewrote it), the model ends (eos) or rambles.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        script: str,
        *,
        eos_token_id: int | None = None,
        seed: int = 0,
        margin: float = 20.0,
    ) -> None:
        self.tokenizer = tokenizer
        self.script = script
        self.prompt_len = 0
        self.eos_token_id = eos_token_id
        self.background = RandomLogits(seed, banned=() if eos_token_id is None else (eos_token_id,))
        self.margin = margin

    def bind_prompt(self, prompt_len: int) -> None:
        self.prompt_len = prompt_len

    def __call__(self, context: Sequence[int], vocab_size: int) -> np.ndarray:
        logits = self.background(context, vocab_size)
        said = self.tokenizer.decode(list(context[self.prompt_len :]))
        rest = self.script[len(said) :] if self.script.startswith(said) else None
        wanted = self.tokenizer.encode(rest, add_special_tokens=False)[:1] if rest else []
        target = wanted[0] if wanted else self.eos_token_id
        if target is not None:
            logits[target] = float(logits.max()) + self.margin
        return logits


@dataclass
class SimulationResult:
    """What a client would have received, plus everything the mod saw and did."""

    tokens: list[int]
    text: str
    finish_reason: str
    tool_calls: list[dict[str, Any]] | None
    error: str | None
    trace: RequestTrace
    events: list[ModEvent] = field(default_factory=list)
    forward_calls: int = 0
    tokens_computed: int = 0
    rollbacks: list[int] = field(default_factory=list)

    @property
    def mod_calls(self) -> list[ModCall]:
        return self.trace.mod_calls

    @property
    def erased_tokens(self) -> list[int]:
        return [r.token for r in self.trace.tokens if r.erased]


class Simulator:
    """Runs mods offline through the real request loop; see the module docstring."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        logits: LogitsSource | None = None,
        *,
        vocab_size: int | None = None,
        eos_token_id: int | None = None,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size or vocab_size_of(tokenizer)
        self.eos_token_id = eos_token_id if eos_token_id is not None else getattr(tokenizer, "eos_token_id", None)
        self.logits = logits or RandomLogits(seed)
        self.temperature = temperature
        self.rng = np.random.default_rng(seed)

    def run(
        self,
        mod: Mod | Callable[..., Any] | None,
        prompt: str | Sequence[int],
        *,
        max_tokens: int = 64,
        stop: Sequence[str] = (),
        messages: Sequence[Message] | None = None,
        request_id: str | None = None,
        top_logprobs: int = 0,
    ) -> SimulationResult:
        prompt_ids = self.tokenizer.encode(prompt, add_special_tokens=False) if isinstance(prompt, str) else prompt
        params = GenerationParams(
            max_tokens=max_tokens,
            stop_token_ids=frozenset() if self.eos_token_id is None else frozenset({self.eos_token_id}),
            stop=tuple(stop),
            top_logprobs=top_logprobs,
            temperature=self.temperature,
        )
        events: list[ModEvent] = []

        def recording_invoker(m: Mod, event: ModEvent, actions: ActionBuilder, tok: Any) -> Any:
            events.append(event)
            return call_mod(m, event, actions, tok)

        gen = Generation(
            request_id=request_id or f"sim-{uuid.uuid4().hex[:12]}",
            prompt_tokens=list(prompt_ids),
            tokenizer=self.tokenizer,
            vocab_size=self.vocab_size,
            mod=None if mod is None else as_mod(mod),
            params=params,
            messages=messages,
            invoke=recording_invoker,
        )
        result = SimulationResult([], "", "", None, None, gen.trace, events)
        self._drive(gen, result)
        result.tokens, result.text = list(gen.output), gen.text()
        result.finish_reason = gen.finish_reason or "stop"
        result.tool_calls, result.error = gen.tool_calls, None if gen.error is None else str(gen.error)
        return result

    def _drive(self, gen: Generation, result: SimulationResult) -> None:
        gen.prefill()
        if isinstance(self.logits, ScriptedLogits):
            self.logits.bind_prompt(len(gen.prompt))  # after adjust_prefill: the script follows the real prompt
        while not gen.finished:
            rollback, new_tokens = gen.take_sync()
            if rollback:
                result.rollbacks.append(rollback)
            result.forward_calls += 1
            result.tokens_computed += len(new_tokens)
            plan = gen.forward_pass(self.logits(gen.context, self.vocab_size))
            if plan is not None:
                gen.sampled(self._sample(plan, gen.params.temperature))

    def _sample(self, plan: SamplePlan, default_temperature: float) -> int:
        logits = to_numpy(plan.logits).astype(np.float64).reshape(-1)
        temperature = default_temperature if plan.temperature is None else plan.temperature
        if temperature <= 0:
            return int(np.argmax(logits))
        z = logits / temperature
        z -= z.max()
        probs = np.exp(z)
        probs /= probs.sum()
        return int(self.rng.choice(len(probs), p=probs))
