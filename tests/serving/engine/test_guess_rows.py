"""The isolated step samples the engine's own rows before the mods answer (`ModRuntime._guess`);
it checks them as one batch with the rule `rows.checked_row` applies to each row: no NaN, no +inf,
not every logit -inf. A batch that fails is not guessed (the plain path fails the bad request)."""

from __future__ import annotations

import pytest
import torch

from quote_serving.runtime.mod_runtime import _samplable
from quote_serving.runtime.rows import BadRow, checked_row


@pytest.mark.parametrize("poison", ["none", "nan", "+inf", "all -inf", "some -inf"], ids=lambda p: p.replace(" ", "-"))
def test_the_batch_check_agrees_with_the_row_check(poison: str) -> None:
    rows = torch.randn(4, 64)
    if poison == "nan":
        rows[2, 5] = float("nan")
    elif poison == "+inf":
        rows[1, 0] = float("inf")
    elif poison == "all -inf":
        rows[3, :] = float("-inf")
    elif poison == "some -inf":
        rows[0, :10] = float("-inf")  # a banned token: still samplable
    each_ok = True
    for row in rows:
        try:
            checked_row(row, 64, torch.device("cpu"))
        except BadRow:
            each_ok = False
    assert _samplable(rows) is each_ok
