"""`EmbeddedBackend`: the engine port implemented in-process on a transformers model.

Data flow of one `forward(ids)`:
  1. validate ids; sequences with nothing pending answer from their cached logits;
  2. `KVCacheStore.reserve` grows the caches of the others (all-or-nothing against the budget);
  3. `batch.pack` concatenates all their pending tokens into one ragged row with position ids;
  4. one `model(...)` call with our attention hook enabled writes/reads each sequence's cache and
     computes logits only at each sequence's last token (`logits_to_keep`);
  5. on success, lengths are committed; a failed call leaves every sequence as it was.

Design choice. transformers 5.x ships continuous-batching pieces (`PagedAttentionCache`,
`ContinuousBatchProcessor`, paged SDPA/eager attention). We use its public extension points instead:
`AttentionInterface.register` for the attention hook, kwargs pass-through to attention functions,
packed `position_ids` and `logits_to_keep`. Reasons:
  * rollback: the paged allocators have no "shrink a request" operation; trimming would mean
    editing their block tables, ledgers and prefix-sharing hashes from outside;
  * stability: those classes are internal to `generate_batch` and keyed by its `RequestState`; their
    API changes between 5.x minors (several methods are deprecated "for removal in 5.23"), and this
    project allows transformers >=5.20,<6;
  * CPU speed: the paged read path gathers every cached token of every sequence on every layer and
    builds a [T, cache + T] mask per step; a contiguous per-sequence buffer is attended as a
    zero-copy view and rollback is a length change.
The cost is a Python loop over sequences per layer inside attention, cheap at the batch sizes an
embedded engine serves; a remote engine backend covers the high-throughput case.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel

from quote_serving.engine.embedded.attention import BATCH_KWARG, varlen_attention_enabled
from quote_serving.engine.embedded.batch import PackedBatch, pack
from quote_serving.engine.embedded.kv_store import KVCacheStore, KVLayout
from quote_serving.engine.embedded.sequences import SequenceState
from quote_serving.engine.port import (
    CapacityError,
    DuplicateSequenceError,
    EmptySequenceError,
    EngineError,
    EngineStats,
    InvalidBatchError,
    InvalidTokenError,
    UnknownSequenceError,
)


class EmbeddedBackend:
    """Continuous batching with rollback over a transformers causal LM, in this process.

    Not thread-safe: one engine loop drives it, and it owns the model while `forward` runs.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        max_sequences: int = 256,
        max_cache_tokens: int | None = None,
    ) -> None:
        """`max_cache_tokens` caps the KV capacity reserved by all sequences together (None: no cap)."""
        _check_model(model)
        self.model = model
        self.layout = KVLayout.from_model(model)
        self.device = self.layout.device
        self.vocab_size = _logits_width(model)
        self.max_sequences = max_sequences
        self.stats = EngineStats()
        self.caches = KVCacheStore(self.layout, max_cache_tokens)
        self._seqs: dict[str, SequenceState] = {}

    # -- sequence lifecycle -------------------------------------------------------------------

    def add_sequence(self, seq_id: str, prompt: Sequence[int]) -> None:
        if seq_id in self._seqs:
            raise DuplicateSequenceError(seq_id)
        if not prompt:
            raise EmptySequenceError(f"sequence {seq_id!r}: the prompt is empty; give at least one token")
        if len(self._seqs) >= self.max_sequences:
            raise CapacityError(
                f"all {self.max_sequences} sequence slots are in use; remove finished sequences or raise max_sequences"
            )
        tokens = self._checked_tokens(seq_id, prompt, current=0)
        self._seqs[seq_id] = SequenceState(tokens=tokens)
        self.caches.create(seq_id)
        self.stats.sequences_added += 1

    def remove_sequence(self, seq_id: str) -> None:
        self._state(seq_id)
        del self._seqs[seq_id]
        self.caches.free(seq_id)
        self.stats.sequences_removed += 1

    def extend(self, seq_id: str, tokens: Sequence[int]) -> None:
        state = self._state(seq_id)
        state.extend(self._checked_tokens(seq_id, tokens, current=len(state)))

    def rollback(self, seq_id: str, n: int) -> None:
        state = self._state(seq_id)
        kept = state.rollback(n)
        self.caches.get(seq_id).truncate(kept)
        if n:
            self.stats.rollbacks += 1
            self.stats.tokens_rolled_back += n

    def length(self, seq_id: str) -> int:
        return len(self._state(seq_id))

    @property
    def sequence_ids(self) -> list[str]:
        return list(self._seqs)

    # -- the batched step ---------------------------------------------------------------------

    def forward(self, seq_ids: Sequence[str]) -> torch.Tensor:
        states = self._states_for_forward(seq_ids)
        todo = [sid for sid, st in zip(seq_ids, states) if st.logits is None]
        if todo:
            self._compute(todo)
        return torch.stack([st.next_logits() for st in states])

    def _compute(self, seq_ids: list[str]) -> None:
        """Run one model call over all pending tokens of these sequences and commit the result."""
        states = [self._seqs[sid] for sid in seq_ids]
        self.caches.reserve({sid: len(st) for sid, st in zip(seq_ids, states)})
        batch = pack([(st, self.caches.get(sid)) for sid, st in zip(seq_ids, states)], self.device)
        logits = self._run_model(batch)
        for state, seg, row in zip(states, batch.segments, logits):
            seg.cache.commit(seg.total)
            state.mark_computed(row)
        self.stats.forward_calls += 1
        self.stats.tokens_computed += batch.num_tokens

    @torch.inference_mode()  # not just no_grad: no version counters or view tracking, ~5-10% of a decode step
    def _run_model(self, batch: PackedBatch) -> torch.Tensor:
        with varlen_attention_enabled(self.model):
            out = self.model(
                input_ids=batch.input_ids,
                position_ids=batch.position_ids,
                use_cache=False,
                logits_to_keep=batch.logits_index,
                **{BATCH_KWARG: batch},
            )
        logits: torch.Tensor = out.logits[0].float()
        return logits

    # -- validation ---------------------------------------------------------------------------

    def _state(self, seq_id: str) -> SequenceState:
        try:
            return self._seqs[seq_id]
        except KeyError:
            raise UnknownSequenceError(seq_id) from None

    def _states_for_forward(self, seq_ids: Sequence[str]) -> list[SequenceState]:
        if isinstance(seq_ids, str) or not seq_ids:
            raise InvalidBatchError("forward() needs a non-empty list of sequence ids")
        if len(set(seq_ids)) != len(seq_ids):
            raise InvalidBatchError(f"forward() got duplicate sequence ids: {list(seq_ids)}")
        states = [self._state(sid) for sid in seq_ids]
        for sid, st in zip(seq_ids, states):
            if not st.tokens:
                raise EmptySequenceError(
                    f"sequence {sid!r} has no tokens (rolled back to empty); extend() it before forward()"
                )
        return states

    def _checked_tokens(self, seq_id: str, tokens: Sequence[int], current: int) -> list[int]:
        """Copy the tokens as ints, rejecting ids outside the vocabulary and overlong sequences."""
        try:
            # __index__ accepts Python/numpy ints and integer tensors, and rejects floats (same as
            # operator.index under mypy).
            out = [t.__index__() for t in tokens]
        except (AttributeError, TypeError):
            raise InvalidTokenError(f"sequence {seq_id!r}: token ids must be integers") from None
        if out and (min(out) < 0 or max(out) >= self.vocab_size):
            bad = next(t for t in out if not 0 <= t < self.vocab_size)
            raise InvalidTokenError(
                f"sequence {seq_id!r}: token id {bad} is outside the vocabulary [0, {self.vocab_size})"
            )
        if current + len(out) > self.layout.max_tokens:
            raise CapacityError(
                f"sequence {seq_id!r} would reach {current + len(out)} tokens, past the model's context "
                f"window of {self.layout.max_tokens}; shorten the prompt or lower max_tokens"
            )
        return out


def _check_model(model: PreTrainedModel) -> None:
    """Only models that route attention through AttentionInterface can use our KV cache."""
    if not getattr(model, "_supports_attention_backend", False):
        raise EngineError(
            f"{type(model).__name__} does not route attention through transformers' AttentionInterface, "
            "so the embedded backend cannot manage its KV cache; use another engine backend"
        )


def _logits_width(model: PreTrainedModel) -> int:
    head = model.get_output_embeddings()  # type: ignore[no-untyped-call]  # transformers leaves it untyped
    if head is not None and hasattr(head, "out_features"):  # also an int8 head, whose `weight` is a method
        return int(head.out_features)
    return int(head.weight.shape[0]) if head is not None else int(model.config.get_text_config().vocab_size)
