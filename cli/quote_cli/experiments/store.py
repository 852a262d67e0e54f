"""Results in one local SQLite file: one row per (model, arm, prompt, sample), so a rerun skips what is done."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
  model TEXT NOT NULL, arm TEXT NOT NULL, prompt_id TEXT NOT NULL, sample INTEGER NOT NULL,
  data TEXT NOT NULL,
  PRIMARY KEY (model, arm, prompt_id, sample)
);
"""


@dataclass
class Result:
    """One completed request, with what its trace said about the mod's work."""

    model: str
    arm: str
    prompt_id: str
    sample: int
    text: str = ""
    finish_reason: str | None = None
    error: str | None = None
    mod_error: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    total_ms: float = 0.0
    trace_id: str | None = None
    interventions: dict[str, int] = field(default_factory=dict)
    forced_tokens: int = 0
    erased_tokens: int = 0
    segments: list[tuple[str, str]] = field(default_factory=list)  # (kind, text): sampled | forced | erased
    scores: dict[str, bool] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.model, self.arm, self.prompt_id, self.sample)


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.executescript(SCHEMA)

    def check_spec(self, fingerprint: str, force: bool = False) -> None:
        """A results file belongs to one spec: resuming with another would mix incomparable rows."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'spec'").fetchone()
        if row is not None and row[0] != fingerprint and not force:
            raise ValueError(f"{self.path} holds results of another spec; use another --out or --fresh")
        with self.db:
            if row is not None and row[0] != fingerprint:
                self.db.execute("DELETE FROM results")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('spec', ?)", (fingerprint,))

    def set_meta(self, key: str, value: Any) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def done(self) -> set[tuple[str, str, str, int]]:
        return {
            (m, a, p, int(s)) for m, a, p, s in self.db.execute("SELECT model, arm, prompt_id, sample FROM results")
        }

    def put(self, result: Result) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)", (*result.key, json.dumps(asdict(result)))
            )

    def results(self) -> list[Result]:
        rows = self.db.execute("SELECT data FROM results ORDER BY model, arm, prompt_id, sample").fetchall()
        out = []
        for (data,) in rows:
            raw = json.loads(data)
            raw["segments"] = [tuple(s) for s in raw.get("segments", [])]
            out.append(Result(**raw))
        return out

    def close(self) -> None:
        self.db.close()
