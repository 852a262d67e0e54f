"""Scorers: each turns (answer text, prompt fields) into pass/fail. A Python scorer file defines
`score(text: str, fields: dict) -> bool | float` (a float counts as a pass when ≥ 0.5)."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable
from typing import Any

import jsonschema

from quote_cli.experiments.spec import Scorer, Spec, SpecError

ScoreFn = Callable[[str, dict[str, Any]], bool]


def _json_value(text: str) -> Any:
    """The answer as JSON; a fenced ```json block is unwrapped first (models often add one)."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    return json.loads(fenced.group(1) if fenced else text)


def _json_valid(text: str, _fields: dict[str, Any]) -> bool:
    try:
        _json_value(text)
    except ValueError:
        return False
    return True


def build(scorer: Scorer, spec: Spec) -> ScoreFn:
    kind = scorer.kind
    if kind == "regex":
        if scorer.pattern is None:
            raise SpecError(f"scorer {scorer.name}: regex needs `pattern`")
        try:
            rx = re.compile(scorer.pattern, 0 if scorer.case_sensitive else re.I)
        except re.error as exc:
            raise SpecError(f"scorer {scorer.name}: bad regex ({exc})") from exc
        return lambda text, _f: rx.search(text) is not None
    if kind == "contains":
        if scorer.value is None:
            raise SpecError(f"scorer {scorer.name}: contains needs `value`")
        needle = scorer.value if scorer.case_sensitive else scorer.value.lower()
        return lambda text, _f: needle in (text if scorer.case_sensitive else text.lower())
    if kind == "json_valid":
        return _json_valid
    if kind == "json_schema":
        if scorer.schema_ is None:
            raise SpecError(f"scorer {scorer.name}: json_schema needs `schema`")
        try:
            validator = jsonschema.Draft202012Validator(scorer.schema_)
            jsonschema.Draft202012Validator.check_schema(scorer.schema_)
        except jsonschema.SchemaError as exc:
            raise SpecError(f"scorer {scorer.name}: invalid JSON schema ({exc.message})") from exc

        def schema_ok(text: str, _f: dict[str, Any]) -> bool:
            try:
                return bool(validator.is_valid(_json_value(text)))
            except ValueError:
                return False

        return schema_ok
    if kind == "exact":
        field = scorer.field

        def exact(text: str, fields: dict[str, Any]) -> bool:
            expected = fields.get(field)
            if expected is None:
                return False
            a, b = text.strip(), str(expected).strip()
            return a == b if scorer.case_sensitive else a.lower() == b.lower()

        return exact
    return _python_scorer(scorer, spec)


def _python_scorer(scorer: Scorer, spec: Spec) -> ScoreFn:
    if scorer.file is None:
        raise SpecError(f"scorer {scorer.name}: python needs `file`")
    path = spec.resolve(scorer.file)
    if not path.is_file():
        raise SpecError(f"scorer {scorer.name}: {path}: file not found")
    module_spec = importlib.util.spec_from_file_location(f"quote_scorer_{scorer.name}", path)
    if module_spec is None or module_spec.loader is None:
        raise SpecError(f"scorer {scorer.name}: {path}: cannot load")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # the user's file: any error is theirs to fix, reported in one line
        raise SpecError(f"scorer {scorer.name}: {path}: {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, "score", None)
    if not callable(fn):
        raise SpecError(f"scorer {scorer.name}: {path}: defines no `score(text, fields)`")

    def call(text: str, fields: dict[str, Any]) -> bool:
        result = fn(text, fields)
        return bool(result >= 0.5) if isinstance(result, float) else bool(result)

    return call


def build_all(spec: Spec) -> dict[str, ScoreFn]:
    return {s.name: build(s, spec) for s in spec.scorers}


def score(scorers: dict[str, ScoreFn], text: str, fields: dict[str, Any]) -> dict[str, bool]:
    """Every scorer's verdict; a scorer that raises fails that answer rather than the run."""
    out: dict[str, bool] = {}
    for name, fn in scorers.items():
        try:
            out[name] = fn(text, fields)
        except Exception:
            out[name] = False
    return out
