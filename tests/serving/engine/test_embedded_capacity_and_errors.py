"""Slots and cache memory are freed on removal; bad calls raise precise EngineError subclasses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch

from quote_serving.engine import (
    CapacityError,
    DuplicateSequenceError,
    EmptySequenceError,
    EngineError,
    InvalidBatchError,
    InvalidRollbackError,
    InvalidTokenError,
    UnknownSequenceError,
)
from quote_serving.engine.embedded import EmbeddedBackend

MakeBackend = Callable[..., EmbeddedBackend]
Reference = Callable[[Sequence[int]], torch.Tensor]


def test_remove_sequence_frees_its_cache_and_slot(make_backend: MakeBackend) -> None:
    backend = make_backend(max_sequences=2)
    backend.add_sequence("a", list(range(3, 103)))
    backend.add_sequence("b", list(range(3, 13)))
    backend.forward(["a", "b"])
    both = backend.caches.reserved_bytes
    assert both >= 110 * backend.layout.bytes_per_token

    with pytest.raises(CapacityError, match="slots"):
        backend.add_sequence("c", [5])
    backend.remove_sequence("a")
    assert backend.caches.reserved_bytes < both
    backend.add_sequence("c", [5])  # the freed slot is reusable
    backend.remove_sequence("b")
    backend.remove_sequence("c")
    assert backend.caches.reserved_bytes == 0
    assert len(backend.caches) == 0


def test_cache_budget_exhaustion_raises_and_leaves_sequences_usable(
    make_backend: MakeBackend, reference: Reference
) -> None:
    backend = make_backend(max_cache_tokens=128)
    backend.add_sequence("a", list(range(3, 103)))
    backend.forward(["a"])
    backend.add_sequence("b", list(range(3, 103)))
    with pytest.raises(CapacityError, match="budget"):
        backend.forward(["a", "b"])
    backend.remove_sequence("a")
    assert torch.allclose(backend.forward(["b"])[0], reference(list(range(3, 103))), atol=1e-4)


def test_cache_growth_near_the_budget_takes_only_what_it_needs(make_backend: MakeBackend, reference: Reference) -> None:
    backend = make_backend(max_cache_tokens=150)
    tokens = list(range(3, 103))
    backend.add_sequence("a", tokens)
    backend.forward(["a"])
    backend.extend("a", list(range(200, 240)))  # doubling would reserve 256 > 150 tokens
    logits = backend.forward(["a"])
    assert backend.caches.reserved_tokens == 140
    assert torch.allclose(logits[0], reference(tokens + list(range(200, 240))), atol=1e-4)


def test_sequence_past_the_context_window_is_refused(make_backend: MakeBackend, model: Any) -> None:
    backend = make_backend()
    window = model.config.max_position_embeddings
    backend.add_sequence("s", [5] * (window - 1))
    with pytest.raises(CapacityError, match="context window"):
        backend.extend("s", [5, 5])
    assert backend.length("s") == window - 1


@pytest.mark.parametrize(
    "call",
    [
        lambda b: b.extend("nope", [5]),
        lambda b: b.rollback("nope", 1),
        lambda b: b.forward(["nope"]),
        lambda b: b.remove_sequence("nope"),
        lambda b: b.length("nope"),
    ],
)
def test_unknown_sequence_is_reported(backend: EmbeddedBackend, call: Callable[[EmbeddedBackend], Any]) -> None:
    with pytest.raises(UnknownSequenceError, match="add_sequence"):
        call(backend)


def test_bad_calls_raise_the_matching_engine_errors(backend: EmbeddedBackend) -> None:
    backend.add_sequence("s", [5, 6, 7])
    cases: list[tuple[type[EngineError], Callable[[], Any]]] = [
        (DuplicateSequenceError, lambda: backend.add_sequence("s", [5])),
        (EmptySequenceError, lambda: backend.add_sequence("e", [])),
        (InvalidTokenError, lambda: backend.add_sequence("t", [5, backend.vocab_size])),
        (InvalidTokenError, lambda: backend.extend("s", [-1])),
        (InvalidTokenError, lambda: backend.extend("s", [1.5])),
        (InvalidRollbackError, lambda: backend.rollback("s", 4)),
        (InvalidRollbackError, lambda: backend.rollback("s", -1)),
        (InvalidBatchError, lambda: backend.forward([])),
        (InvalidBatchError, lambda: backend.forward(["s", "s"])),
    ]
    for error, call in cases:
        with pytest.raises(error):
            call()
    assert backend.length("s") == 3  # nothing above changed the sequence
    assert "e" not in backend.sequence_ids and "t" not in backend.sequence_ids


def test_value_errors_are_also_builtin_value_errors(backend: EmbeddedBackend) -> None:
    backend.add_sequence("s", [5])
    with pytest.raises(ValueError):
        backend.rollback("s", 2)
    with pytest.raises(LookupError):
        backend.length("nope")


def test_forward_on_a_sequence_rolled_back_to_empty_asks_for_tokens(backend: EmbeddedBackend) -> None:
    backend.add_sequence("s", [5, 6])
    backend.rollback("s", 2)
    with pytest.raises(EmptySequenceError, match="extend"):
        backend.forward(["s"])
