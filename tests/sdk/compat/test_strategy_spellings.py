"""The original SDK's strategy keywords build the same strategies as ours."""

from __future__ import annotations

import pytest

from quote_mod_sdk.strategies.primitives import CharsMode
from quote_mod_sdk.strategies.strategy_constructor import CharsStrat, ChoicesStrat, ListStrat


def test_chars_strat_int_stop_is_a_length_limit_and_min_is_min_chars() -> None:
    assert CharsStrat(CharsMode.NUMERIC, stop=4, min=1) == CharsStrat(CharsMode.NUMERIC, None, 1, 4)
    assert CharsStrat(CharsMode.ALPHA, stop="\n", min=2).min_chars == 2


@pytest.mark.parametrize("bad", [{"stop": 3, "max_chars": 5}, {"stop": True}, {"stop": 2.5}, {"stop": -1}])
def test_chars_strat_refuses_ambiguous_or_wrong_limits(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CharsStrat(CharsMode.NUMERIC, **bad)  # type: ignore[arg-type]


def test_list_strat_original_keywords() -> None:
    colour = ChoicesStrat(["red", "green"])
    assert ListStrat(elements=colour, sep="; ", min=2, max=3) == ListStrat(colour, "; ", min_items=2, max_items=3)
    with pytest.raises(ValueError):
        ListStrat(colour, elements=colour)
    with pytest.raises(ValueError):
        ListStrat()
