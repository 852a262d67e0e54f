"""Batched sampling: a logits batch [B, V] with per-row parameters → tokens and logprobs.

Data flow: `sample(logits, params, generators)` scales each row by its temperature, masks it with
its top-k and top-p, and draws one token per row by inverse CDF from a single uniform number taken
from that row's own `torch.Generator`. Each row's draw therefore depends only on its own logits and
its own generator, so a seeded request is reproducible whatever else shares its batch. Greedy rows
(temperature 0) take the argmax and consume no randomness.

Logprobs (the chosen token's and the top alternatives, for OpenAI `logprobs`/`top_logprobs`) are
taken from the unmodified logits, i.e. the model's own distribution, as most OpenAI-compatible
servers do; the sampling transforms only decide which token is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    """Per-request sampling settings (OpenAI semantics: top_k 0 and top_p 1.0 mean 'off')."""

    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    top_logprobs: int = 0  # how many alternatives to report per token

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0 or self.top_logprobs < 0:
            raise ValueError("top_k and top_logprobs must be >= 0")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def new_generator(self) -> torch.Generator | None:
        """A generator for one request: seeded when the request has a seed, else None (global RNG).

        Keep it for the whole request: every draw advances it, which is what makes the token
        sequence, not just the first token, reproducible.
        """
        if self.seed is None:
            return None
        return torch.Generator(device="cpu").manual_seed(self.seed)


@dataclass
class SampleResult:
    """One sampled token per row and its logprob; `top_logprobs[i]` is [(token, logprob), ...]."""

    tokens: list[int]
    logprobs: list[float]
    top_logprobs: list[list[tuple[int, float]]]


def sample(
    logits: torch.Tensor,
    params: Sequence[SamplingParams],
    generators: Sequence[torch.Generator | None] | None = None,
) -> SampleResult:
    """Draw one token per row of `logits` [B, V] under that row's params and generator."""
    if logits.ndim != 2 or logits.shape[0] != len(params):
        raise ValueError(f"expected logits [{len(params)}, V], got {list(logits.shape)}")
    gens: list[torch.Generator | None] = list(generators) if generators is not None else [None] * len(params)
    logits = logits.float()
    tokens = _choose(logits, params, gens)
    logprobs = torch.log_softmax(logits, dim=-1)
    chosen = logprobs.gather(1, tokens[:, None])[:, 0]
    return SampleResult(
        tokens=tokens.tolist(),
        logprobs=chosen.tolist(),
        top_logprobs=_top_logprobs(logprobs, params),
    )


@dataclass(frozen=True, slots=True)
class Guess:
    """A token drawn before the mod answered ForwardPass (isolated mods sample ahead of it), and
    how to take the draw back when the answer makes it void."""

    token: int
    logprob: float
    state: torch.Tensor | None  # the row's generator before the draw (None: greedy or unseeded)

    def rewind(self, generator: torch.Generator | None) -> None:
        """Put `generator` back as if this draw had never happened."""
        if self.state is not None and generator is not None:
            generator.set_state(self.state)


def sample_ahead(
    logits: torch.Tensor, params: Sequence[SamplingParams], generators: Sequence[torch.Generator | None]
) -> list[Guess]:
    """`sample`, remembering each seeded row's generator state so that the draw can be rewound."""
    states = [g.get_state() if g is not None and not p.greedy else None for g, p in zip(generators, params)]
    result = sample(logits, params, generators)
    return [Guess(t, lp, state) for t, lp, state in zip(result.tokens, result.logprobs, states)]


def _choose(logits: torch.Tensor, params: Sequence[SamplingParams], gens: list[torch.Generator | None]) -> torch.Tensor:
    """Greedy argmax for temperature-0 rows, filtered inverse-CDF sampling for the rest."""
    tokens = logits.argmax(dim=-1)
    rows = [i for i, p in enumerate(params) if not p.greedy]
    if rows:
        sub = [params[i] for i in rows]
        probs = filtered_probs(logits[rows], sub)
        uniforms = torch.cat([torch.rand(1, generator=gens[i]) for i in rows]).to(probs.device)
        tokens[rows] = _inverse_cdf(probs, uniforms)
    return tokens


def filtered_probs(logits: torch.Tensor, params: Sequence[SamplingParams]) -> torch.Tensor:
    """Temperature-scaled probabilities with each row's top-k and top-p tail removed (renormalised)."""
    temps = torch.tensor([p.temperature for p in params], device=logits.device)
    scaled = logits / temps[:, None]
    if any(p.top_k for p in params):
        scaled = _mask_top_k(scaled, [p.top_k for p in params])
    if any(p.top_p < 1 for p in params):
        scaled = _mask_top_p(scaled, [p.top_p for p in params])
    return torch.softmax(scaled, dim=-1)


def _mask_top_k(scaled: torch.Tensor, top_k: list[int]) -> torch.Tensor:
    """Keep each row's k highest logits (k=0: keep all); ties at the threshold are kept."""
    vocab = scaled.shape[-1]
    ks = torch.tensor([k if 0 < k < vocab else vocab for k in top_k], device=scaled.device)
    ranked = scaled.sort(dim=-1, descending=True).values
    threshold = ranked.gather(1, (ks - 1)[:, None])
    return scaled.masked_fill(scaled < threshold, float("-inf"))


def _mask_top_p(scaled: torch.Tensor, top_p: list[float]) -> torch.Tensor:
    """Keep the smallest set of top tokens whose probability mass reaches p (always at least one)."""
    ps = torch.tensor(top_p, device=scaled.device)[:, None]
    probs, order = torch.softmax(scaled, dim=-1).sort(dim=-1, descending=True)
    mass_before = probs.cumsum(dim=-1) - probs
    drop_sorted = mass_before >= ps
    drop_sorted[:, 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
    return scaled.masked_fill(drop, float("-inf"))


def _inverse_cdf(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Token whose cumulative probability first exceeds the row's uniform draw."""
    cdf = probs.cumsum(dim=-1)
    idx = torch.searchsorted(cdf, (uniforms * cdf[:, -1])[:, None], right=True)[:, 0]
    idx = idx.clamp(max=probs.shape[-1] - 1)
    # Rounding can land on a zero-probability token at a plateau of the CDF; step back to a real one.
    valid = probs.gather(1, idx[:, None])[:, 0] > 0
    if not bool(valid.all()):
        fallback = (probs > 0).cumsum(-1).argmax(-1)  # last nonzero token of the row
        idx = torch.where(valid, idx, fallback)
    return idx


def _top_logprobs(logprobs: torch.Tensor, params: Sequence[SamplingParams]) -> list[list[tuple[int, float]]]:
    """Each row's `top_logprobs` best alternatives as (token, logprob), best first."""
    most = max((p.top_logprobs for p in params), default=0)
    if most == 0:
        return [[] for _ in params]
    values, indices = logprobs.topk(min(most, logprobs.shape[-1]), dim=-1)
    pairs = zip(indices.tolist(), values.tolist())
    return [list(zip(idx[: p.top_logprobs], val[: p.top_logprobs])) for (idx, val), p in zip(pairs, params)]
