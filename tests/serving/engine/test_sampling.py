"""Batched sampling: per-row params, per-request seeds, OpenAI-style logprobs."""

from __future__ import annotations

import pytest
import torch

from quote_serving.engine.sampling import SamplingParams, filtered_probs, sample

VOCAB = 50


def random_logits(rows: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, VOCAB, generator=torch.Generator().manual_seed(seed)) * 2


def test_temperature_zero_is_greedy_and_ignores_the_seed() -> None:
    logits = random_logits(4)
    params = [SamplingParams(temperature=0, seed=s, top_p=0.5) for s in range(4)]
    result = sample(logits, params, [p.new_generator() for p in params])
    assert result.tokens == logits.argmax(-1).tolist()


def test_top_k_one_equals_greedy() -> None:
    logits = random_logits(6, seed=1)
    params = [SamplingParams(temperature=1.5, top_k=1)] * 6
    assert sample(logits, params).tokens == logits.argmax(-1).tolist()


def test_seeded_request_is_reproducible_regardless_of_batch_mates() -> None:
    seeded = SamplingParams(temperature=1.0, seed=1234)
    alone_gen = seeded.new_generator()
    mixed_gens = [None, seeded.new_generator(), SamplingParams(seed=9).new_generator()]
    mates = [SamplingParams(temperature=0.7), seeded, SamplingParams(temperature=1.3, top_p=0.9, seed=9)]
    alone, mixed = [], []
    for step in range(20):
        logits = random_logits(3, seed=100 + step)
        alone += sample(logits[1:2], [seeded], [alone_gen]).tokens
        mixed.append(sample(logits, mates, mixed_gens).tokens[1])
    assert alone == mixed
    assert len(set(alone)) > 1  # it really sampled


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    probs = filtered_probs(logits, [SamplingParams(top_p=0.7)])
    assert torch.allclose(probs, torch.tensor([[0.625, 0.375, 0.0, 0.0]]), atol=1e-6)
    gen = torch.Generator().manual_seed(0)
    drawn = {sample(logits, [SamplingParams(top_p=0.7)], [gen]).tokens[0] for _ in range(200)}
    assert drawn == {0, 1}


def test_top_k_draws_only_from_the_k_best() -> None:
    logits = random_logits(1, seed=3)
    best = set(logits[0].topk(3).indices.tolist())
    gen = torch.Generator().manual_seed(0)
    drawn = {sample(logits, [SamplingParams(temperature=5, top_k=3)], [gen]).tokens[0] for _ in range(300)}
    assert drawn == best


def test_sampling_frequencies_follow_the_distribution() -> None:
    probs = torch.tensor([0.6, 0.3, 0.1])
    gen = torch.Generator().manual_seed(7)
    logits = probs.log().expand(4000, 3).contiguous()
    tokens = sample(logits, [SamplingParams()] * 4000, [gen] * 4000).tokens
    freq = torch.bincount(torch.tensor(tokens), minlength=3).float() / 4000
    assert torch.allclose(freq, probs, atol=0.03)


def test_logprobs_come_from_the_model_distribution() -> None:
    logits = random_logits(2, seed=5)
    params = [SamplingParams(temperature=0, top_logprobs=3), SamplingParams(temperature=0.5)]
    result = sample(logits, params)
    expected = torch.log_softmax(logits, -1)
    for row, (token, logprob) in enumerate(zip(result.tokens, result.logprobs)):
        assert logprob == pytest.approx(expected[row, token].item(), abs=1e-6)
    top = result.top_logprobs[0]
    assert [t for t, _ in top] == expected[0].topk(3).indices.tolist()
    assert top[0] == (result.tokens[0], pytest.approx(result.logprobs[0]))
    assert result.top_logprobs[1] == []


@pytest.mark.parametrize(
    "kwargs", [{"temperature": -1}, {"top_p": 0}, {"top_p": 1.5}, {"top_k": -2}, {"top_logprobs": -1}]
)
def test_invalid_params_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SamplingParams(**kwargs)  # type: ignore[arg-type]


def test_logits_shape_must_match_the_params() -> None:
    with pytest.raises(ValueError, match="expected logits"):
        sample(random_logits(2), [SamplingParams()])
