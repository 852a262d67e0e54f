"""LogitsEditBatch: every kind of edit lands on the right rows, in a fixed order, validated."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quote_serving.engine.sglang.logits_edits import LogitsEditBatch, shares_row, to_device_row

V = 16


def batch(rows: int = 4) -> torch.Tensor:
    return torch.arange(rows * V, dtype=torch.float32).reshape(rows, V)


def test_dense_rows_replace_only_their_rows() -> None:
    logits, original = batch(), batch()
    edits = LogitsEditBatch(V)
    edits.replace_row(2, torch.full((V,), 7.0))
    edits.replace_row(0, np.full(V, -1.0))  # numpy rows are accepted, like adjust_logits
    edits.apply(logits)
    assert torch.equal(logits[2], torch.full((V,), 7.0))
    assert torch.equal(logits[0], torch.full((V,), -1.0))
    assert torch.equal(logits[[1, 3]], original[[1, 3]])


def test_sparse_values_set_single_entries_across_rows() -> None:
    logits, original = batch(), batch()
    edits = LogitsEditBatch(V)
    edits.set_values(1, [3, 5], [-9.0, 9.0])
    edits.set_values(3, [0], 100.0)
    edits.apply(logits)
    assert logits[1, 3] == -9.0 and logits[1, 5] == 9.0 and logits[3, 0] == 100.0
    changed = (logits != original).nonzero().tolist()
    assert changed == [[1, 3], [1, 5], [3, 0]]


def test_masks_keep_only_allowed_tokens() -> None:
    logits = batch()
    keep = torch.zeros(V, dtype=torch.bool)
    keep[[4, 6]] = True
    edits = LogitsEditBatch(V)
    edits.mask_row(0, keep)
    edits.mask_row(2, [1])
    edits.apply(logits)
    assert torch.isfinite(logits[0]).nonzero().flatten().tolist() == [4, 6]
    assert torch.isfinite(logits[2]).nonzero().flatten().tolist() == [1]
    assert torch.isfinite(logits[1]).all()


def test_greedy_row_keeps_the_argmax_decided_after_other_edits() -> None:
    logits = batch(2)
    edits = LogitsEditBatch(V)
    edits.set_values(1, [2], 1e6)  # sparse edits apply first, so the argmax is token 2
    edits.greedy_row(1)
    edits.apply(logits)
    assert torch.isfinite(logits[1]).nonzero().flatten().tolist() == [2]
    assert logits[1, 2] == 1e6


def test_dense_then_sparse_then_mask_on_one_row() -> None:
    logits = batch(1)
    edits = LogitsEditBatch(V)
    edits.mask_row(0, [0, 1])
    edits.set_values(0, [1], 50.0)
    edits.replace_row(0, torch.zeros(V))
    edits.apply(logits)
    assert logits[0, :2].tolist() == [0.0, 50.0]
    assert torch.isinf(logits[0, 2:]).all()


def test_invalid_edits_are_refused_with_the_reason() -> None:
    edits = LogitsEditBatch(V)
    with pytest.raises(ValueError, match="expected 16"):
        edits.replace_row(0, torch.zeros(V + 1))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        edits.set_values(0, [V], 1.0)
    with pytest.raises(ValueError, match="2 token ids but 1 values"):
        edits.set_values(0, [1, 2], [1.0])
    with pytest.raises(ValueError, match=r"expected logits \[batch, 16\]"):
        edits.apply(torch.zeros(2, V + 1))


def test_empty_batch_is_a_no_op() -> None:
    logits, original = batch(), batch()
    edits = LogitsEditBatch(V)
    assert len(edits) == 0
    edits.apply(logits)
    assert torch.equal(logits, original)


def test_shares_row_detects_in_place_views_only() -> None:
    logits = batch()
    view = logits[1]
    assert shares_row(view, logits, 1)
    assert shares_row(view.as_subclass(torch.Tensor), logits, 1)
    assert not shares_row(view, logits, 2)
    assert not shares_row(view.clone(), logits, 1)
    assert not shares_row(view.numpy(), logits, 1)


def test_to_device_row_converts_dtype_and_type() -> None:
    row = to_device_row(np.arange(V, dtype=np.float64), torch.device("cpu"), torch.bfloat16)
    assert row.dtype == torch.bfloat16 and row.shape == (V,)
