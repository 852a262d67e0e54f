"""The embedded backend computes exactly what a plain HF forward computes, with less work."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from quote_serving.engine import EngineBackend
from quote_serving.engine.embedded import EmbeddedBackend

ATOL = 1e-4
Reference = Callable[[Sequence[int]], torch.Tensor]


def assert_matches(logits: torch.Tensor, expected: torch.Tensor) -> None:
    assert logits.dtype == torch.float32
    assert torch.allclose(logits, expected, atol=ATOL), (logits - expected).abs().max()


def prompt(n: int, offset: int = 0) -> list[int]:
    """n deterministic, varied token ids (avoiding the 3 special tokens)."""
    return [3 + (offset + 37 * i) % 1000 for i in range(n)]


def test_backend_satisfies_the_engine_port(backend: EmbeddedBackend, tokenizer: Any) -> None:
    assert isinstance(backend, EngineBackend)
    assert backend.vocab_size == len(tokenizer)
    assert backend.device == torch.device("cpu")


def test_batched_logits_match_full_forward_with_prefill_and_decode_mixed(
    backend: EmbeddedBackend, reference: Reference
) -> None:
    seqs = {"a": prompt(5), "b": prompt(17, 1), "c": prompt(40, 2)}
    for sid, toks in seqs.items():
        backend.add_sequence(sid, toks)
    backend.forward(["a", "b", "c"])

    seqs["a"] += [11]  # decode step
    seqs["b"] += [12, 13, 14]  # forced multi-token extend
    seqs["d"] = prompt(23, 3)  # a prefill joining the same call
    backend.extend("a", [11])
    backend.extend("b", [12, 13, 14])
    backend.add_sequence("d", seqs["d"])
    order = ["d", "a", "c", "b"]  # c has nothing pending: served from its cached logits
    calls = backend.stats.forward_calls
    logits = backend.forward(order)

    assert logits.shape == (4, backend.vocab_size)
    assert backend.stats.forward_calls == calls + 1
    for row, sid in zip(logits, order):
        assert_matches(row, reference(seqs[sid]))


def test_rollback_then_reinject_matches_fresh_forward_and_recomputes_only_new_tokens(
    backend: EmbeddedBackend, reference: Reference
) -> None:
    tokens = prompt(60)
    backend.add_sequence("s", tokens)
    backend.forward(["s"])
    computed, calls = backend.stats.tokens_computed, backend.stats.forward_calls

    backend.rollback("s", 8)
    reinjected = [7, 8, 9, 10, 11]
    backend.extend("s", reinjected)
    logits = backend.forward(["s"])

    assert backend.length("s") == 60 - 8 + 5
    assert_matches(logits[0], reference(tokens[:52] + reinjected))
    assert backend.stats.tokens_computed - computed == 1 + len(reinjected)  # no re-prefill
    assert backend.stats.forward_calls - calls == 1


def test_rollback_alone_recomputes_exactly_the_last_kept_token(backend: EmbeddedBackend, reference: Reference) -> None:
    tokens = prompt(30)
    backend.add_sequence("s", tokens)
    backend.forward(["s"])
    computed = backend.stats.tokens_computed

    backend.rollback("s", 3)
    assert_matches(backend.forward(["s"])[0], reference(tokens[:27]))
    assert backend.stats.tokens_computed - computed == 1
    assert backend.stats.tokens_rolled_back == 3


def test_rollback_of_pending_tokens_just_drops_them(backend: EmbeddedBackend, reference: Reference) -> None:
    tokens = prompt(20)
    backend.add_sequence("s", tokens)
    backend.forward(["s"])
    computed = backend.stats.tokens_computed

    backend.extend("s", [5, 6, 7, 8])
    backend.rollback("s", 2)  # only pending tokens go: nothing cached is touched
    assert_matches(backend.forward(["s"])[0], reference([*tokens, 5, 6]))
    assert backend.stats.tokens_computed - computed == 2

    backend.extend("s", [9, 10])
    backend.rollback("s", 5)  # past the pending tokens into the cache
    assert_matches(backend.forward(["s"])[0], reference(tokens[:19]))


def test_rollback_to_empty_then_extend_starts_over(backend: EmbeddedBackend, reference: Reference) -> None:
    backend.add_sequence("s", prompt(10))
    backend.forward(["s"])
    backend.rollback("s", 10)
    assert backend.length("s") == 0
    backend.extend("s", [4, 5, 6])
    assert_matches(backend.forward(["s"])[0], reference([4, 5, 6]))


def test_k_extended_tokens_cost_one_forward_call(backend: EmbeddedBackend, reference: Reference) -> None:
    tokens = prompt(12)
    backend.add_sequence("s", tokens)
    backend.forward(["s"])
    calls, computed = backend.stats.forward_calls, backend.stats.tokens_computed

    forced = [21, 22, 23, 24, 25, 26, 27]
    backend.extend("s", forced)
    logits = backend.forward(["s"])

    assert backend.stats.forward_calls - calls == 1
    assert backend.stats.tokens_computed - computed == len(forced)
    assert_matches(logits[0], reference(tokens + forced))


def test_repeated_forward_without_changes_costs_no_model_call(backend: EmbeddedBackend) -> None:
    backend.add_sequence("s", prompt(8))
    first = backend.forward(["s"])
    calls = backend.stats.forward_calls
    assert torch.equal(backend.forward(["s"]), first)
    assert backend.stats.forward_calls == calls


def test_sequences_join_and_leave_between_steps(backend: EmbeddedBackend, reference: Reference) -> None:
    live: dict[str, list[int]] = {}
    schedule = [  # (joining, leaving) per step
        (["a", "b"], []),
        (["c"], []),
        ([], ["a"]),
        (["d", "e"], ["c"]),
        ([], ["b"]),
        (["a"], []),  # an id can be reused once removed
    ]
    for step, (joining, leaving) in enumerate(schedule):
        for sid in leaving:
            backend.remove_sequence(sid)
            del live[sid]
        for sid in live:  # everyone still here decodes one (forced) token
            live[sid].append(100 + step)
            backend.extend(sid, [100 + step])
        for i, sid in enumerate(joining):
            live[sid] = prompt(4 + 3 * i + step, step)
            backend.add_sequence(sid, live[sid])
        ids = sorted(live)
        logits = backend.forward(ids)
        for row, sid in zip(logits, ids):
            assert_matches(row, reference(live[sid]))
    assert sorted(backend.sequence_ids) == sorted(live)


def test_greedy_decoding_matches_hf_generate_for_concurrent_prompts(
    backend: EmbeddedBackend, model: Any, tokenizer: Any
) -> None:
    texts = ["Say hi.", "I can help you with that: the red apple", "question: why is the sky blue?"]
    prompts = {f"p{i}": list(tokenizer.encode(t)) for i, t in enumerate(texts)}
    new_tokens = 24
    ours = greedy_decode(backend, prompts, new_tokens, eos=tokenizer.eos_token_id)
    for sid, toks in prompts.items():
        with torch.no_grad():
            out = model.generate(
                torch.tensor([toks]),
                attention_mask=torch.ones(1, len(toks), dtype=torch.long),
                do_sample=False,
                max_new_tokens=new_tokens,
                pad_token_id=tokenizer.pad_token_id,
            )
        assert ours[sid] == out[0, len(toks) :].tolist(), sid


def greedy_decode(backend: EmbeddedBackend, prompts: dict[str, list[int]], n: int, eos: int) -> dict[str, list[int]]:
    """Batched greedy loop: all unfinished sequences share each forward call."""
    generated: dict[str, list[int]] = {sid: [] for sid in prompts}
    for sid, toks in prompts.items():
        backend.add_sequence(sid, toks)
    active = list(prompts)
    while active:
        logits = backend.forward(active)
        for sid, token in zip(list(active), logits.argmax(-1).tolist()):
            generated[sid].append(token)
            if token == eos or len(generated[sid]) == n:
                active.remove(sid)
                backend.remove_sequence(sid)
            else:
                backend.extend(sid, [token])
    return generated


def test_sliding_window_attention_matches_full_forward() -> None:
    """Mistral-style windows: every query sees only the last `window` positions, cached or new."""
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    config = MistralConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=8,
    )
    mistral = MistralForCausalLM(config).eval()
    backend = EmbeddedBackend(mistral)
    tokens = prompt(40)
    tokens = [t % 300 for t in tokens]
    backend.add_sequence("s", tokens[:30])
    backend.forward(["s"])
    backend.rollback("s", 4)
    backend.extend("s", tokens[26:35])  # multi-token step straddling the window
    for t in tokens[35:]:
        backend.forward(["s"])
        backend.extend("s", [t])  # single-token steps
    with torch.no_grad():
        expected = mistral(torch.tensor([tokens])).logits[0, -1]
    assert_matches(backend.forward(["s"])[0], expected)
