"""Per-arm metrics and paired comparisons with bootstrap confidence intervals.

Comparisons are paired by prompt: each (model, prompt) gives one difference (the mean over its
samples in arm B minus in arm A), and those differences are resampled with replacement. Pairing
removes the prompt-to-prompt spread that would otherwise hide a real effect.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from quote_cli.experiments.store import Result

Metric = Callable[[Result], float]


def passed_all(r: Result) -> float:
    return float(r.error is None and all(r.scores.values()))


METRICS: dict[str, Metric] = {
    "pass_rate": passed_all,
    "completion_tokens": lambda r: float(r.completion_tokens),
    "total_ms": lambda r: r.total_ms,
}


def bootstrap_mean_ci(
    values: Sequence[float], *, resamples: int = 10000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): the percentile bootstrap interval of the mean of `values`."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return (float(data.mean()), float(low), float(high))


def wilson(passes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a pass rate: sane at 0 %, 100 % and small n, unlike mean ± 2 SE."""
    if n == 0:
        return (math.nan, math.nan)
    p = passes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def paired_differences(results: list[Result], arm_a: str, arm_b: str, metric: Metric) -> list[float]:
    per: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        per[(r.model, r.prompt_id)][r.arm].append(metric(r))
    return [
        float(np.mean(arms[arm_b]) - np.mean(arms[arm_a]))
        for _, arms in sorted(per.items())
        if arms.get(arm_a) and arms.get(arm_b)
    ]


def compare(results: list[Result], arm_a: str, arm_b: str, *, seed: int = 0) -> dict[str, Any]:
    """B − A for each metric: mean difference, 95 % paired-bootstrap interval, and whether it excludes 0."""
    out: dict[str, Any] = {"a": arm_a, "b": arm_b}
    for name, metric in METRICS.items():
        diffs = paired_differences(results, arm_a, arm_b, metric)
        mean, low, high = bootstrap_mean_ci(diffs, seed=seed)
        out[name] = {
            "diff": mean,
            "ci": [low, high],
            "pairs": len(diffs),
            "significant": bool(diffs) and (low > 0 or high < 0),
        }
    return out


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "mean": None}
    p50, p90 = np.percentile(values, [50, 90])
    return {"p50": float(p50), "p90": float(p90), "mean": float(np.mean(values))}


def arm_summary(results: list[Result], scorer_names: list[str]) -> dict[str, Any]:
    n = len(results)
    ok = [r for r in results if r.error is None]
    rates: dict[str, Any] = {}
    for name in [*scorer_names, "all"]:
        passes = sum(1 for r in results if (passed_all(r) if name == "all" else r.error is None and r.scores.get(name)))
        rates[name] = passes / n if n else math.nan
        rates[f"{name}_ci"] = list(wilson(passes, n))
    actions: dict[str, int] = defaultdict(int)
    for r in results:
        for action, count in r.interventions.items():
            actions[action] += count
    finish: dict[str, int] = defaultdict(int)
    for r in results:
        finish[r.finish_reason or ("error" if r.error else "none")] += 1
    return {
        "n": n,
        "pass_rate": {k: v for k, v in rates.items() if not k.endswith("_ci")},
        "pass_rate_ci": {k[:-3]: v for k, v in rates.items() if k.endswith("_ci")},
        "finish_reasons": dict(finish),
        "errors": n - len(ok),
        "mod_errors": sum(1 for r in results if r.mod_error),
        "error_rate": (n - len(ok)) / n if n else math.nan,
        "interventions": dict(actions),
        "mean_interventions": sum(actions.values()) / n if n else math.nan,
        "forced_tokens": sum(r.forced_tokens for r in results),
        "erased_tokens": sum(r.erased_tokens for r in results),
        "completion_tokens": _percentiles([float(r.completion_tokens) for r in ok]),
        "ttft_ms": _percentiles([r.ttft_ms for r in ok if r.ttft_ms is not None]),
        "total_ms": _percentiles([r.total_ms for r in ok]),
        "mean_completion_tokens": float(np.mean([r.completion_tokens for r in ok])) if ok else math.nan,
        "mean_total_ms": float(np.mean([r.total_ms for r in ok])) if ok else math.nan,
        "mean_ttft_ms": float(np.mean([r.ttft_ms for r in ok if r.ttft_ms is not None] or [math.nan])),
    }


def summarize(results: list[Result], arms: list[str], scorer_names: list[str], *, seed: int = 0) -> dict[str, Any]:
    """Everything the report and `--json` show: per-arm metrics and each arm against the first (the baseline)."""
    by_arm = {arm: [r for r in results if r.arm == arm] for arm in arms}
    base = arms[0]
    return {
        "arms": {arm: arm_summary(rows, scorer_names) for arm, rows in by_arm.items()},
        "comparisons": [compare(results, base, arm, seed=seed) for arm in arms[1:]],
    }
