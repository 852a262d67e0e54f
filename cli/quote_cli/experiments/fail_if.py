"""`fail_if` conditions: a tiny arithmetic language over per-arm metrics, parsed with `ast`, never `eval`.

Example: `pass_rate(mod) < pass_rate(base) + 0.05`. Functions take an arm name (and, for
`pass_rate`, optionally a scorer name); the condition is true when the run should fail.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

METRICS = ("pass_rate", "mean_completion_tokens", "mean_total_ms", "mean_ttft_ms", "error_rate", "mean_interventions")
_BINOPS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_CMPOPS: dict[type[ast.cmpop], Callable[[float, float], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_ALLOWED = (ast.Compare, ast.BinOp, ast.Constant, ast.Name, ast.Load, ast.UnaryOp, ast.USub)


class ConditionError(ValueError):
    """A fail_if condition outside the language, or naming an unknown arm or metric."""


def parse_condition(text: str, arms: list[str]) -> ast.Compare:
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        raise ConditionError(f"fail_if {text!r}: not an expression") from exc
    if not isinstance(tree, ast.Compare) or len(tree.ops) != 1 or type(tree.ops[0]) not in _CMPOPS:
        raise ConditionError(f"fail_if {text!r}: must be one comparison (<, <=, >, >=)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in METRICS or node.keywords:
                raise ConditionError(f"fail_if {text!r}: functions are {', '.join(METRICS)}")
            if not 1 <= len(node.args) <= 2 or not all(isinstance(a, ast.Name) for a in node.args):
                raise ConditionError(f"fail_if {text!r}: a metric takes an arm name (and a scorer for pass_rate)")
            if node.args[0].id not in arms:  # type: ignore[attr-defined]  # an ast.Name, checked above
                # (type: ignore below: node.args[0] is an ast.Name, checked above)
                raise ConditionError(f"fail_if {text!r}: unknown arm {node.args[0].id!r}")  # type: ignore[attr-defined]
        elif not isinstance(node, _ALLOWED) and type(node) not in _BINOPS and type(node) not in _CMPOPS:
            raise ConditionError(f"fail_if {text!r}: {type(node).__name__} is not allowed")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            raise ConditionError(f"fail_if {text!r}: only numbers are allowed as constants")
    return tree


def evaluate(text: str, arms: Mapping[str, Mapping[str, Any]]) -> bool:
    """True when the condition holds (the run fails). `arms[arm]` holds the metrics of METRICS."""
    tree = parse_condition(text, list(arms))

    def value(node: ast.expr) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            names = [a.id for a in node.args if isinstance(a, ast.Name)]
            metrics = arms[names[0]]
            if node.func.id == "pass_rate":
                rates = metrics["pass_rate"]
                scorer = names[1] if len(names) > 1 else "all"
                if scorer not in rates:
                    raise ConditionError(f"fail_if {text!r}: unknown scorer {scorer!r}")
                return float(rates[scorer])
            return float(metrics[node.func.id])
        raise ConditionError(f"fail_if {text!r}: cannot evaluate {ast.dump(node)[:40]}")

    return _CMPOPS[type(tree.ops[0])](value(tree.left), value(tree.comparators[0]))
