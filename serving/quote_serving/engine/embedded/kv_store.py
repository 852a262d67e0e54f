"""Per-sequence KV cache: one growing buffer per sequence, trimmed in place on rollback.

Data flow: before a forward, the backend asks the store to `reserve` room for every sequence's
new length (all-or-nothing, so a CapacityError leaves nothing half-grown). During the forward the
attention hook `write`s each layer's new keys/values at the sequence's current length and `read`s
the prefix it attends to. After the forward succeeds the backend `commit`s the new length. Rollback
is `truncate`: it only moves the length back, so the kept prefix is never recomputed or copied.

Why one contiguous buffer per sequence rather than a shared paged pool: on CPU, attention over a
contiguous prefix is a zero-copy view, while a paged pool must gather every page on every layer and
step. Growth is geometric, so the amortised copy cost per token is O(1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from quote_serving.engine.port import CapacityError

_ALIGN = 64  # growth with headroom rounds capacities up to this, so small extends rarely reallocate


@dataclass(frozen=True)
class KVLayout:
    """Shape of one token's cache entry, read from the model config."""

    num_layers: int
    kv_heads: int
    head_dim: int
    dtype: torch.dtype
    device: torch.device
    max_tokens: int  # the model's context window: no sequence may grow past it

    @property
    def bytes_per_token(self) -> int:
        return self.num_layers * 2 * self.kv_heads * self.head_dim * self.dtype.itemsize

    @classmethod
    def from_model(cls, model: PreTrainedModel) -> KVLayout:
        config = model.config.get_text_config()
        heads = config.num_attention_heads
        param = next(model.parameters())
        return cls(
            num_layers=config.num_hidden_layers,
            kv_heads=getattr(config, "num_key_value_heads", None) or heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
            dtype=param.dtype,
            device=param.device,
            max_tokens=getattr(config, "max_position_embeddings", None) or 1 << 30,
        )


class SequenceKV:
    """Keys and values of one sequence for all layers: buffer [layers, 2, kv_heads, capacity, head_dim]."""

    def __init__(self, layout: KVLayout) -> None:
        self.layout = layout
        self.length = 0  # tokens whose K/V are valid in every layer
        self._buffer: torch.Tensor | None = None

    @property
    def capacity(self) -> int:
        return 0 if self._buffer is None else self._buffer.shape[3]

    def target_capacity(self, tokens: int, *, headroom: bool = True) -> int:
        """Capacity for `tokens`: with headroom, doubled and aligned (within the context window)."""
        if tokens <= self.capacity:
            return self.capacity
        if not headroom:
            return tokens
        wanted = max(tokens, 2 * self.capacity)
        aligned = -(-wanted // _ALIGN) * _ALIGN
        return max(tokens, min(aligned, self.layout.max_tokens))

    def grow(self, capacity: int) -> None:
        """Reallocate to `capacity` tokens, copying the valid prefix."""
        if capacity <= self.capacity:
            return
        lay = self.layout
        shape = (lay.num_layers, 2, lay.kv_heads, capacity, lay.head_dim)
        buffer = torch.empty(shape, dtype=lay.dtype, device=lay.device)
        if self._buffer is not None and self.length:
            buffer[:, :, :, : self.length] = self._buffer[:, :, :, : self.length]
        self._buffer = buffer

    def write(self, layer: int, start: int, kv: torch.Tensor) -> None:
        """Store one layer's new keys and values ([2, kv_heads, n, head_dim]) at positions start..start+n."""
        assert self._buffer is not None, "reserve() must run before a forward writes"
        self._buffer[layer, :, :, start : start + kv.shape[2]] = kv

    def read(self, layer: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Views of one layer's K/V for positions 0..end: [kv_heads, end, head_dim] each."""
        assert self._buffer is not None
        kv = self._buffer[layer, :, :, :end]
        return kv[0], kv[1]

    def commit(self, length: int) -> None:
        """Mark positions up to `length` valid once the forward that wrote them has succeeded."""
        self.length = length

    def truncate(self, length: int) -> None:
        """Forget everything from `length` on; the buffer is kept for the tokens that follow."""
        self.length = min(self.length, length)

    def release(self) -> int:
        """Drop the buffer; returns the capacity freed."""
        freed = self.capacity
        self._buffer = None
        self.length = 0
        return freed


class KVCacheStore:
    """All sequences' caches plus the budget they share (in tokens of reserved capacity)."""

    def __init__(self, layout: KVLayout, max_tokens: int | None = None) -> None:
        self.layout = layout
        self.max_tokens = max_tokens  # None: bounded only by device memory
        self.reserved_tokens = 0
        self._caches: dict[str, SequenceKV] = {}

    def __len__(self) -> int:
        return len(self._caches)

    @property
    def reserved_bytes(self) -> int:
        return self.reserved_tokens * self.layout.bytes_per_token

    def create(self, seq_id: str) -> SequenceKV:
        cache = self._caches[seq_id] = SequenceKV(self.layout)
        return cache

    def get(self, seq_id: str) -> SequenceKV:
        return self._caches[seq_id]

    def free(self, seq_id: str) -> None:
        self.reserved_tokens -= self._caches.pop(seq_id).release()

    def reserve(self, needs: dict[str, int]) -> None:
        """Grow caches so each sequence holds its new length; all-or-nothing against the budget.

        Growth normally doubles (amortised O(1) copies); near the budget it falls back to growing
        just enough, so the budget limits tokens held rather than headroom.
        """
        plan, extra = self._plan(needs, headroom=True)
        if not self._fits(extra):
            plan, extra = self._plan(needs, headroom=False)
        if not self._fits(extra):
            raise CapacityError(
                f"KV cache budget exhausted: {self.reserved_tokens} of {self.max_tokens} tokens reserved "
                f"and this step needs {extra} more; finish or remove sequences, or raise max_cache_tokens"
            )
        for sid, cap in plan.items():
            self._caches[sid].grow(cap)
        self.reserved_tokens += extra

    def _plan(self, needs: dict[str, int], *, headroom: bool) -> tuple[dict[str, int], int]:
        """New capacity per sequence and the tokens of capacity they add together."""
        plan = {sid: self._caches[sid].target_capacity(n, headroom=headroom) for sid, n in needs.items()}
        return plan, sum(cap - self._caches[sid].capacity for sid, cap in plan.items())

    def _fits(self, extra: int) -> bool:
        return self.max_tokens is None or self.reserved_tokens + extra <= self.max_tokens
