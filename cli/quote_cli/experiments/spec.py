"""The experiment spec (YAML) and its prompt file (JSONL or CSV): validated once, errors as one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class SpecError(Exception):
    """A spec or prompt file a user must fix; the message is one line naming the file."""


class Arm(BaseModel):
    """One condition: the base model alone (`mod: null`) or with `mod` / `mod@version`."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    mod: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:@^~*-]{1,128}$")


class Scorer(BaseModel):
    """A pass/fail check on an answer; `kind` picks which fields matter."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: Literal["regex", "contains", "json_valid", "json_schema", "exact", "python"]
    pattern: str | None = None
    value: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    field: str = "expected"
    file: str | None = None
    case_sensitive: bool = True


class Spec(BaseModel):
    """What to run: prompts × models × arms × samples, against one OpenAI-compatible endpoint."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = "experiment"
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str | None = None
    prompts: str
    models: list[str] = Field(min_length=1)
    arms: list[Arm] = Field(min_length=1)
    samples: int = Field(default=1, ge=1, le=1000)
    temperature: float = Field(default=0.0, ge=0, le=2)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    max_tokens: int = Field(default=64, ge=1, le=32768)
    concurrency: int = Field(default=4, ge=1, le=256)
    timeout_s: float = Field(default=120, gt=0)
    scorers: list[Scorer] = Field(default_factory=list)
    fail_if: list[str] = Field(default_factory=list)
    base_dir: Path = Field(default=Path("."), exclude=True)

    @field_validator("arms")
    @classmethod
    def _unique_arms(cls, arms: list[Arm]) -> list[Arm]:
        names = [a.name for a in arms]
        if len(set(names)) != len(names):
            raise ValueError("arm names must be unique")
        return arms

    def resolve(self, relative: str) -> Path:
        """Paths in a spec are relative to the spec file, so a spec runs from any directory."""
        path = Path(relative)
        return path if path.is_absolute() else self.base_dir / path


class Prompt(BaseModel):
    """One prompt: chat messages (or plain text, sent as one user message) and optional fields for scorers."""

    id: str
    messages: list[dict[str, str]]
    fields: dict[str, Any] = Field(default_factory=dict)


def load_spec(path: Path) -> Spec:
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: no such spec file") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: the spec must be a YAML mapping")
    try:
        spec = Spec.model_validate({**raw, "base_dir": path.parent})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "spec"
        raise SpecError(f"{path}: {where}: {first['msg']} ({len(exc.errors())} error(s))") from exc
    from quote_cli.experiments.fail_if import ConditionError, parse_condition

    for condition in spec.fail_if:
        try:
            parse_condition(condition, [a.name for a in spec.arms])
        except ConditionError as exc:
            raise SpecError(f"{path}: {exc}") from exc
    return spec


def _prompt(row: dict[str, Any], index: int, where: str) -> Prompt:
    fields = {k: v for k, v in row.items() if k not in ("id", "prompt", "messages")}
    pid = str(row.get("id") or index)
    if isinstance(row.get("messages"), list):
        messages = row["messages"]
        if not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
            raise SpecError(f"{where}: messages must be objects with a string content")
        return Prompt(
            id=pid,
            messages=[{"role": str(m.get("role", "user")), "content": m["content"]} for m in messages],
            fields=fields,
        )
    if isinstance(row.get("prompt"), str) and row["prompt"]:
        return Prompt(id=pid, messages=[{"role": "user", "content": row["prompt"]}], fields=fields)
    raise SpecError(f"{where}: needs a non-empty `prompt` string or a `messages` list")


def load_prompts(spec: Spec) -> list[Prompt]:
    path = spec.resolve(spec.prompts)
    if not path.is_file():
        raise SpecError(f"{path}: prompt file not found")
    prompts: list[Prompt] = []
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as handle:
            for i, row in enumerate(csv.DictReader(handle), start=1):
                prompts.append(_prompt(dict(row), i, f"{path}:{i + 1}"))
    else:
        for i, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SpecError(f"{path}:{i}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise SpecError(f"{path}:{i}: each line must be a JSON object")
            prompts.append(_prompt(row, i, f"{path}:{i}"))
    if not prompts:
        raise SpecError(f"{path}: no prompts")
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        raise SpecError(f"{path}: prompt ids must be unique")
    return prompts
