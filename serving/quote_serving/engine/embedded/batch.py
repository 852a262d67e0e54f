"""Packs the pending tokens of many sequences into one ragged ("varlen") batch.

Data flow: the backend hands over (state, cache) pairs; `pack` concatenates every sequence's pending
tokens into a single row [1, T] (no padding to the longest), with per-token position ids continuing
each sequence's own positions. Each sequence becomes a `Segment` that tells the attention hook where
its queries sit in the row and how much cached past it attends to. `logits_index` picks each
sequence's last token, the only position whose logits the caller needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from quote_serving.engine.embedded.kv_store import SequenceKV
from quote_serving.engine.embedded.sequences import SequenceState


@dataclass
class Segment:
    """One sequence's slice of the packed batch."""

    cache: SequenceKV
    start: int  # offset of its first pending token in the packed row
    count: int  # pending tokens
    past: int  # tokens already cached = position of its first pending token
    _masks: dict[int | None, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> slice:
        return slice(self.start, self.start + self.count)

    @property
    def total(self) -> int:
        return self.past + self.count

    def attention_mask(self, window: int | None, device: torch.device) -> tuple[torch.Tensor | None, bool]:
        """(mask, is_causal) for SDPA: query i sees keys up to its own position, within the window.

        Returns no mask where none is needed (a single query without a binding window) or where
        SDPA's `is_causal` says it exactly (a fresh prefill: queries and keys are the same square
        block). Otherwise a boolean [count, total] mask, built once per window and shared by layers.
        """
        if window is not None and window >= self.total:
            window = None  # the window covers the whole sequence: plain causal attention
        if window is None and (self.count == 1 or self.past == 0):
            return None, self.count > 1
        if window not in self._masks:
            q_pos = torch.arange(self.past, self.total, device=device)[:, None]
            k_pos = torch.arange(self.total, device=device)[None, :]
            allowed = k_pos <= q_pos
            if window is not None:
                allowed &= q_pos - k_pos < window
            self._masks[window] = allowed
        return self._masks[window], False


@dataclass
class PackedBatch:
    """Model inputs for one forward plus what the attention hook needs to use the caches."""

    input_ids: torch.Tensor  # [1, T]
    position_ids: torch.Tensor  # [1, T]
    segments: list[Segment]
    logits_index: torch.Tensor  # [num_sequences]: each sequence's last packed token

    @property
    def num_tokens(self) -> int:
        return self.input_ids.shape[1]


def pack(items: Sequence[tuple[SequenceState, SequenceKV]], device: torch.device) -> PackedBatch:
    """Build the packed batch from sequences that each have at least one pending token."""
    ids: list[int] = []
    positions: list[int] = []
    segments: list[Segment] = []
    for state, cache in items:
        pending = state.pending
        segments.append(Segment(cache, start=len(ids), count=len(pending), past=state.computed))
        ids.extend(pending)
        positions.extend(range(state.computed, len(state)))
    last = [seg.start + seg.count - 1 for seg in segments]
    return PackedBatch(
        input_ids=torch.tensor([ids], dtype=torch.long, device=device),
        position_ids=torch.tensor([positions], dtype=torch.long, device=device),
        segments=segments,
        logits_index=torch.tensor(last, dtype=torch.long, device=device),
    )
