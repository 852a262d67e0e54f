"""Benchmark the embedded engine backend: KV rollback, decode speed, continuous batching.

Run: .venv/bin/python bench/kv_rollback.py   (CPU is fine; about a minute on 2 cores)

Uses a tiny-but-real Llama (random weights, hidden 256, 4 layers, 4k positions) so the numbers
reflect the engine's own overheads. Prints, asserts nothing:
  1. at 2k context, backtrack 8 + reinject 8 (rollback + extend + forward) vs re-prefilling 2k;
  2. single-sequence greedy decode tokens/s, ours vs HF `generate()`;
  3. 8 concurrent sequences decoded in shared forwards vs one after another.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from quote_serving.engine.embedded import EmbeddedBackend
from quote_serving.models.tiny import TinyModelSpec, build_tiny_model

SPEC = TinyModelSpec(
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=4096,
)
CONTEXT = 2048
BACKTRACK = 8


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of `fn` in seconds, after one warm-up call.

    The minimum, not the mean: on a shared machine other processes only ever add time, so the
    fastest run is the closest estimate of the code's own cost (as `timeit` recommends).
    """
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return min(samples)


def random_tokens(n: int, seed: int) -> list[int]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(3, SPEC.vocab_size, (n,), generator=gen).tolist()


def bench_rollback(model: torch.nn.Module) -> None:
    backend = EmbeddedBackend(model)
    tokens = random_tokens(CONTEXT, seed=0)
    backend.add_sequence("s", tokens)
    backend.forward(["s"])

    def backtrack_and_reinject() -> None:
        backend.rollback("s", BACKTRACK)
        backend.extend("s", tokens[-BACKTRACK:])
        backend.forward(["s"])

    def reprefill() -> None:
        backend.remove_sequence("s")
        backend.add_sequence("s", tokens)
        backend.forward(["s"])

    rollback_s = timed(backtrack_and_reinject, repeats=30)
    prefill_s = timed(reprefill, repeats=5)
    print(f"[rollback] context {CONTEXT}, backtrack {BACKTRACK} + reinject {BACKTRACK}")
    print(f"  rollback + extend + forward : {rollback_s * 1e3:8.2f} ms")
    print(f"  full re-prefill of {CONTEXT}     : {prefill_s * 1e3:8.2f} ms")
    print(f"  rollback is {prefill_s / rollback_s:.1f}x cheaper (target >= 20x)")


def greedy_ours(backend: EmbeddedBackend, prompts: dict[str, list[int]], new_tokens: int) -> int:
    """Decode all prompts together, one shared forward per step; returns tokens generated."""
    for sid, toks in prompts.items():
        backend.add_sequence(sid, toks)
    ids = list(prompts)
    for _ in range(new_tokens):
        for sid, token in zip(ids, backend.forward(ids).argmax(-1).tolist()):
            backend.extend(sid, [token])
    for sid in ids:
        backend.remove_sequence(sid)
    return len(ids) * new_tokens


@torch.no_grad()
def greedy_hf(model: torch.nn.Module, prompt: list[int], new_tokens: int) -> int:
    model.generate(
        torch.tensor([prompt]),
        attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
        do_sample=False,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        pad_token_id=0,
    )
    return new_tokens


def bench_single_decode(model: torch.nn.Module, prompt_len: int = 128, new_tokens: int = 128) -> None:
    backend = EmbeddedBackend(model)
    prompt = random_tokens(prompt_len, seed=1)
    ours = timed(lambda: greedy_ours(backend, {"s": prompt}, new_tokens), repeats=3)
    hf = timed(lambda: greedy_hf(model, prompt, new_tokens), repeats=3)
    print(f"[decode] one sequence, prompt {prompt_len}, {new_tokens} new tokens (greedy)")
    print(f"  embedded backend : {new_tokens / ours:8.1f} tok/s")
    print(f"  HF generate()    : {new_tokens / hf:8.1f} tok/s")
    print(f"  ratio ours / HF  : {hf / ours:.2f}x")


def bench_batching(model: torch.nn.Module, n: int = 8, prompt_len: int = 128, new_tokens: int = 64) -> None:
    backend = EmbeddedBackend(model)
    prompts = {f"s{i}": random_tokens(prompt_len, seed=10 + i) for i in range(n)}

    def sequential() -> None:
        for sid, toks in prompts.items():
            greedy_ours(backend, {sid: toks}, new_tokens)

    batched = timed(lambda: greedy_ours(backend, prompts, new_tokens), repeats=2)
    one_by_one = timed(sequential, repeats=2)
    total = n * new_tokens
    print(f"[batching] {n} sequences, prompt {prompt_len}, {new_tokens} new tokens each")
    print(f"  batched (shared forwards) : {total / batched:8.1f} tok/s")
    print(f"  sequential                : {total / one_by_one:8.1f} tok/s")
    print(f"  batching speed-up         : {one_by_one / batched:.2f}x")


def main() -> None:
    model = build_tiny_model(SPEC)
    print(
        f"model: Llama hidden {SPEC.hidden_size}, {SPEC.num_hidden_layers} layers, random weights; "
        f"torch threads {torch.get_num_threads()}"
    )
    bench_rollback(model)
    bench_single_decode(model)
    bench_batching(model)


if __name__ == "__main__":
    main()
