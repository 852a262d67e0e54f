"""fail_if conditions: the metric language, and what an attacker would put in a spec instead."""

from __future__ import annotations

import pytest

from quote_cli.experiments.fail_if import ConditionError, evaluate, parse_condition

ARMS = {
    "base": {"pass_rate": {"all": 0.40, "json": 0.5}, "mean_completion_tokens": 20.0, "error_rate": 0.0},
    "mod": {"pass_rate": {"all": 0.42, "json": 0.9}, "mean_completion_tokens": 30.0, "error_rate": 0.1},
}


def test_the_documented_threshold() -> None:
    assert evaluate("pass_rate(mod) < pass_rate(base) + 0.05", ARMS) is True
    assert evaluate("pass_rate(mod, json) < pass_rate(base, json) + 0.05", ARMS) is False
    assert evaluate("mean_completion_tokens(mod) > 1.2 * mean_completion_tokens(base)", ARMS) is True
    assert evaluate("error_rate(mod) >= -0.5 + 0.55", ARMS) is True


@pytest.mark.parametrize(
    "condition",
    [
        "__import__('os').system('true') > 0",
        "pass_rate(mod).__class__ > 0",
        "pass_rate(nobody) < 1",
        "pass_rate(mod)",
        "pass_rate(mod) < 1 < 2",
        "open('/etc/passwd') > 0",
        "pass_rate(mod) < 'a'",
        "[x for x in ()] < 1",
        "pass_rate(mod) <",
        "pass_rate(arm=mod) < 1",
    ],
)
def test_anything_else_is_refused_before_it_runs(condition: str) -> None:
    with pytest.raises(ConditionError):
        parse_condition(condition, list(ARMS))


def test_an_unknown_scorer_is_named() -> None:
    with pytest.raises(ConditionError, match="unknown scorer 'nope'"):
        evaluate("pass_rate(mod, nope) < 1", ARMS)
