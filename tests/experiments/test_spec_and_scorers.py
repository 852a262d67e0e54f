"""Spec and prompt-file validation, and each scorer on answers with a known verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from quote_cli.experiments.scorers import build_all, score
from quote_cli.experiments.spec import SpecError, load_prompts, load_spec

SPEC = """
prompts: {prompts}
models: [m]
arms: [{{name: base}}, {{name: mod, mod: "json_mod@1.2.0"}}]
scorers:
  - {{name: rx, kind: regex, pattern: "^\\\\d+$"}}
  - {{name: has, kind: contains, value: Paris, case_sensitive: false}}
  - {{name: valid, kind: json_valid}}
  - {{name: schema, kind: json_schema, schema: {{type: object, required: [a], properties: {{a: {{type: integer}}}}}}}}
  - {{name: exact, kind: exact, field: answer}}
  - {{name: py, kind: python, file: scorer.py}}
"""


def write(tmp_path: Path, spec: str, prompts: str = '{"prompt": "hi", "answer": "42"}\n') -> Path:
    (tmp_path / "p.jsonl").write_text(prompts)
    (tmp_path / "scorer.py").write_text("def score(text, fields):\n    return 0.7 if len(text) > 3 else 0.1\n")
    path = tmp_path / "spec.yaml"
    path.write_text(spec)
    return path


def test_scorers_give_known_verdicts(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, SPEC.format(prompts="p.jsonl")))
    scorers = build_all(spec)
    fields = load_prompts(spec)[0].fields
    assert score(scorers, "42", fields) == {
        "rx": True,
        "has": False,
        "valid": True,
        "schema": False,
        "exact": True,
        "py": False,
    }
    assert score(scorers, '```json\n{"a": 1}\n```', fields) | {"py": True} == {
        "rx": False,
        "has": False,
        "valid": True,
        "schema": True,
        "exact": False,
        "py": True,
    }
    assert score(scorers, "it is paris", fields)["has"] is True
    assert score(scorers, '{"a": "x"}', fields)["schema"] is False


def test_csv_and_chat_prompts(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text('id,prompt,expected\nq1,"Say, hi",hi\n')
    spec = load_spec(write(tmp_path, "prompts: p.csv\nmodels: [m]\narms: [{name: a}]\n"))
    [p] = load_prompts(spec)
    assert p.id == "q1" and p.messages == [{"role": "user", "content": "Say, hi"}] and p.fields == {"expected": "hi"}
    chat = '{"id": "c", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x"}]}\n'
    spec = load_spec(write(tmp_path, "prompts: p.jsonl\nmodels: [m]\narms: [{name: a}]\n", chat))
    assert [m["role"] for m in load_prompts(spec)[0].messages] == ["system", "user"]


@pytest.mark.parametrize(
    ("spec", "prompts", "message"),
    [
        ("prompts: p.jsonl\nmodels: [m]\narms: []\n", None, "arms"),
        ("prompts: p.jsonl\nmodels: [m]\narms: [{name: a}, {name: a}]\n", None, "unique"),
        ("prompts: p.jsonl\nmodels: [m]\narms: [{name: a, mod: '../../x y'}]\n", None, "arms.0.mod"),
        ("prompts: p.jsonl\nmodels: [m]\narms: [{name: a}]\nsamples: 0\n", None, "samples"),
        ("prompts: p.jsonl\nmodels: [m]\narms: [{name: a}]\ntypo: 1\n", None, "typo"),
        ("prompts: p.jsonl\nmodels: [m]\narms: [{name: a}]\nfail_if: ['pass_rate(b) < 1']\n", None, "unknown arm"),
        ("[1, 2", None, "not valid YAML"),
        ("prompts: p.jsonl\nmodels: [m]\narms: [{name: a}]\n", "{not json\n", "p.jsonl:1: not valid JSON"),
        ("prompts: p.jsonl\nmodels: [m]\narms: [{name: a}]\n", '{"text": "no prompt"}\n', "needs a non-empty"),
        (
            "prompts: p.jsonl\nmodels: [m]\narms: [{name: a}]\n",
            '{"id": 1, "prompt": "a"}\n{"id": 1, "prompt": "b"}\n',
            "unique",
        ),
        ("prompts: gone.jsonl\nmodels: [m]\narms: [{name: a}]\n", None, "prompt file not found"),
        (
            "prompts: p.jsonl\nmodels: [m]\narms: [{name: a}]\nscorers: [{name: r, kind: regex, pattern: '('}]\n",
            None,
            "bad regex",
        ),
    ],
)
def test_mistakes_are_one_line_errors(tmp_path: Path, spec: str, prompts: str | None, message: str) -> None:
    path = write(tmp_path, spec, *([prompts] if prompts else []))
    with pytest.raises(SpecError) as info:
        loaded = load_spec(path)
        load_prompts(loaded)
        build_all(loaded)
    assert message in str(info.value) and "\n" not in str(info.value)
