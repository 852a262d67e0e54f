"""Generation events a mod reacts to, in the order a request sees them.

    Prefilled (once) → per step: ForwardPass → [Sampled] → Added → … → Finished (once)

Events are plain slotted dataclasses built by the engine-neutral request loop
(`quote_mod_sdk.generation`); the simulator and every serving backend build the same ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ContextInfo:
    """The token context at prefill: `tokens[:_prompt_len]` is the prompt."""

    tokens: list[int]
    _prompt_len: int

    @property
    def prompt_len(self) -> int:
        return self._prompt_len


@dataclass(slots=True)
class Prefilled:
    """Fired exactly once per request, before the first forward pass."""

    request_id: str
    step: int
    max_steps: int
    prefilled_text: str = ""
    context_info: ContextInfo | Any = None
    tokens_so_far_len: int = 0

    def __post_init__(self) -> None:
        # The original SDK's positional order is (request_id, step, max_steps, context_info).
        if not isinstance(self.prefilled_text, str) and self.context_info is None:
            self.context_info, self.prefilled_text = self.prefilled_text, ""


@dataclass(slots=True)
class ForwardPass:
    """Fired every step after the forward pass, before sampling; `logits` is this request's row."""

    request_id: str
    step: int
    logits: Any

    def top_k_logprob(self, k: int) -> list[tuple[int, float]]:
        """The k most likely next tokens as (token_id, logprob), most likely first."""
        return top_k_logprobs(self.logits, k)


@dataclass(slots=True)
class Sampled:
    """Fired after sampling, before the sampled token is committed."""

    request_id: str
    step: int
    sampled_token: int


@dataclass(slots=True)
class Added:
    """Fired after tokens are appended to the output (`forced` tells sampled from injected)."""

    request_id: str
    step: int
    added_tokens: list[int]
    forced: bool = False
    tokens_so_far_len: int = 0

    def __post_init__(self) -> None:
        # An older original SDK took (request_id, step, added_tokens, tokens_so_far_len, forced);
        # its users' positional calls (`Added(rid, 2, toks, 3, False)`) are read that way.
        if isinstance(self.tokens_so_far_len, bool) and not isinstance(self.forced, bool):
            self.forced, self.tokens_so_far_len = self.tokens_so_far_len, int(self.forced)

    @property
    def tokens(self) -> list[int]:
        """The original SDK's name for `added_tokens`."""
        return self.added_tokens


@dataclass(slots=True)
class Finished:
    """Fired once when a request ends for any reason, so mods can drop per-request state."""

    request_id: str
    step: int
    reason: str
    output_tokens: list[int] = field(default_factory=list)


ModEvent = Prefilled | ForwardPass | Sampled | Added | Finished
EVENT_TYPES: tuple[type, ...] = (Prefilled, ForwardPass, Sampled, Added, Finished)


def top_k_logprobs(logits: Any, k: int) -> list[tuple[int, float]]:
    """Top-k (token, logprob) of a logits row, torch tensor or numpy array alike."""
    if k <= 0:
        return []
    if hasattr(logits, "detach"):  # torch, without importing it
        import torch

        row = torch.log_softmax(logits.detach().float().reshape(-1), dim=-1)
        values, indices = torch.topk(row, min(k, row.shape[0]))
        return [(int(i), float(v)) for i, v in zip(indices.tolist(), values.tolist())]
    import numpy as np

    arr = np.asarray(logits, dtype=np.float64).reshape(-1)
    top = np.argpartition(-arr, min(k, arr.size) - 1)[:k]
    top = top[np.argsort(-arr[top], kind="stable")]
    finite = arr[np.isfinite(arr)]
    peak = float(finite.max()) if finite.size else 0.0
    log_z = peak + math.log(float(np.exp(finite - peak).sum())) if finite.size else 0.0
    return [(int(i), float(arr[i] - log_z)) for i in top]
