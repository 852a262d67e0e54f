"""The statistics against cases with a known answer."""

from __future__ import annotations

import math
import random

import pytest

from quote_cli.experiments.stats import bootstrap_mean_ci, compare, summarize, wilson
from quote_cli.experiments.store import Result


def row(arm: str, prompt: str, passed: bool, tokens: int = 10, sample: int = 0) -> Result:
    return Result(
        model="m",
        arm=arm,
        prompt_id=prompt,
        sample=sample,
        completion_tokens=tokens,
        total_ms=100.0,
        scores={"s": passed},
    )


def test_wilson_matches_the_published_values() -> None:
    # 0/10 and 10/10: the textbook Wilson bounds (z = 1.96) are 0.2775 and 0.7225.
    assert wilson(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((0.72247, 1.0), abs=1e-4)
    assert wilson(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-4)
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_the_bootstrap_interval_of_a_mean_matches_the_normal_theory_one() -> None:
    rng = random.Random(7)
    values = [rng.gauss(3.0, 2.0) for _ in range(400)]
    mean, low, high = bootstrap_mean_ci(values, resamples=20000, seed=1)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    half = 1.959964 * sd / len(values) ** 0.5
    assert mean == pytest.approx(sum(values) / len(values))
    assert low == pytest.approx(mean - half, abs=0.15 * half)
    assert high == pytest.approx(mean + half, abs=0.15 * half)


def test_a_mod_that_always_fixes_the_answer_is_a_real_difference() -> None:
    results = [row("base", str(p), False, 10) for p in range(20)] + [row("mod", str(p), True, 14) for p in range(20)]
    c = compare(results, "base", "mod")
    assert c["pass_rate"]["diff"] == 1.0 and c["pass_rate"]["ci"] == [1.0, 1.0] and c["pass_rate"]["significant"]
    assert c["completion_tokens"]["diff"] == 4.0 and c["completion_tokens"]["significant"]
    assert c["total_ms"]["diff"] == 0.0 and not c["total_ms"]["significant"]


def test_noise_is_not_called_real_and_pairing_removes_prompt_spread() -> None:
    # Same pass/fail per prompt in both arms, wildly different token counts per prompt but a constant +1 shift:
    # an unpaired comparison would drown the +1 in the spread; the paired one finds it exactly.
    results = []
    for p in range(30):
        passed = p % 2 == 0
        results += [row("base", str(p), passed, tokens=p * 50), row("mod", str(p), passed, tokens=p * 50 + 1)]
    c = compare(results, "base", "mod")
    assert c["pass_rate"]["diff"] == 0.0 and not c["pass_rate"]["significant"]
    assert c["completion_tokens"]["ci"] == [1.0, 1.0] and c["completion_tokens"]["significant"]


def test_a_coin_flip_difference_has_an_interval_that_contains_zero() -> None:
    rng = random.Random(3)
    results = [row(arm, str(p), rng.random() < 0.5) for p in range(40) for arm in ("base", "mod")]
    c = compare(results, "base", "mod")
    low, high = c["pass_rate"]["ci"]
    assert low < 0 < high and not c["pass_rate"]["significant"]


def test_samples_of_one_prompt_are_averaged_before_pairing() -> None:
    results = [row("base", "p", False, sample=s) for s in range(4)]
    results += [row("mod", "p", s < 3, sample=s) for s in range(4)]
    c = compare(results, "base", "mod")
    assert c["pass_rate"]["pairs"] == 1 and c["pass_rate"]["diff"] == 0.75


def test_summary_counts_errors_as_failures_and_interventions_by_action() -> None:
    ok = row("mod", "a", True)
    ok.interventions = {"backtrack": 2, "force_tokens": 1}
    failed = row("mod", "b", True)
    failed.error, failed.mod_error = "mod raised", True
    s = summarize([ok, failed, row("base", "a", False), row("base", "b", False)], ["base", "mod"], ["s"])
    mod = s["arms"]["mod"]
    assert mod["pass_rate"]["all"] == 0.5 and mod["mod_errors"] == 1 and mod["errors"] == 1
    assert mod["interventions"] == {"backtrack": 2, "force_tokens": 1}
    assert s["comparisons"][0]["pass_rate"]["diff"] == 0.5
