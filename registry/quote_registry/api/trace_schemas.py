"""Bodies and JSON shapes of the trace routes (bounded, so a replica cannot flood the store)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator

from quote_registry.models import TraceRecord
from quote_registry.services.trace_errors import ModProblems, RecentProblem

MAX_TRACE_BYTES = 2 * 1024 * 1024


class TraceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=128)
    tenant: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=256)
    mod: str = Field("", max_length=160)
    finish_reason: str = Field("", max_length=32)
    error: bool = False
    erasures: int = Field(0, ge=0, le=10_000_000)
    replica: str = Field("", max_length=128)
    created: float = Field(ge=0, le=32503680000)  # up to year 3000
    body: dict[str, Any]

    @field_validator("request_id", "tenant", "model", "mod", "finish_reason", "replica")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:  # PostgreSQL text cannot hold NUL: refuse it here, not as a 500 there
            raise ValueError("must not contain NUL characters")
        return value


class TraceBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[TraceIn] = Field(max_length=500)


def trace_summary(row: TraceRecord) -> dict[str, Any]:
    return {
        "id": row.request_id,
        "object": "trace.summary",
        "created": int(row.created_at.timestamp()),
        "model": row.model,
        "mod": row.mod or None,
        "finish_reason": row.finish_reason or None,
        "error": row.error,
        "erasures": row.erasures,
        "replica": row.replica or None,
    }


def trace_out(row: TraceRecord) -> dict[str, Any]:
    return {**row.body, "id": row.request_id, "object": "trace", "replica": row.replica or None}


def recent_errors_out(rows: list[RecentProblem], per_mod: list[ModProblems]) -> dict[str, Any]:
    """Flat rows, as Grafana's JSON data sources read them: `time` in RFC 3339, `timeline` to open one."""
    return {
        "object": "list",
        "data": [
            {**asdict(r), "created": int(r.created.timestamp()), "time": r.created.isoformat(), "timeline": _link(r.id)}
            for r in rows
        ],
        "by_mod": [{**asdict(m), "latest": m.latest.isoformat(), "timeline": _link(m.latest_id)} for m in per_mod],
    }


def _link(request_id: str) -> str:
    return f"/timeline?trace={quote(request_id, safe='')}"
