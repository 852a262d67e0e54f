"""Runs an experiment: every (model, arm, prompt, sample) not yet in the store, with bounded concurrency.

Each request streams (so TTFT is measured where the client sees it), then the server's trace
(`GET /v1/traces/{id}`) gives the interventions, forced and erased tokens. A row is written as
soon as it completes, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from quote_cli.experiments.scorers import ScoreFn, score
from quote_cli.experiments.spec import Arm, Prompt, Spec
from quote_cli.experiments.store import Result, Store

Progress = Callable[[int], None]


def fingerprint(spec: Spec, prompts: list[Prompt]) -> str:
    """What makes two runs comparable: everything but concurrency, timeouts and thresholds."""
    keep = spec.model_dump(mode="json", exclude={"concurrency", "timeout_s", "fail_if", "scorers", "base_dir"})
    keep["prompts"] = [p.model_dump() for p in prompts]
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()


def model_name(model: str, arm: Arm) -> str:
    return model if arm.mod is None else f"{model}/{arm.mod}"


def jobs(spec: Spec, prompts: list[Prompt], done: set[tuple[str, str, str, int]]) -> list[tuple[str, Arm, Prompt, int]]:
    out = []
    for model in spec.models:
        for prompt in prompts:
            for sample in range(spec.samples):
                for arm in spec.arms:
                    if (model, arm.name, prompt.id, sample) not in done:
                        out.append((model, arm, prompt, sample))
    return out


def _segments(trace: dict[str, Any]) -> list[tuple[str, str]]:
    segments: list[tuple[str, str]] = []
    for token in trace.get("tokens", []):
        if token.get("stop"):
            continue
        kind = "erased" if token.get("erased") else str(token.get("kind", "sampled"))
        if segments and segments[-1][0] == kind:
            segments[-1] = (kind, segments[-1][1] + str(token.get("text", "")))
        else:
            segments.append((kind, str(token.get("text", ""))))
    return segments


def apply_trace(result: Result, trace: dict[str, Any]) -> None:
    tokens = trace.get("tokens", [])
    result.forced_tokens = sum(1 for t in tokens if t.get("kind") == "forced")
    result.erased_tokens = sum(1 for t in tokens if t.get("erased"))
    actions = Counter(str(c["action"]) for c in trace.get("mod_calls", []) if c.get("action") not in (None, "noop"))
    result.interventions = dict(actions)
    result.segments = _segments(trace)
    if trace.get("error") and not result.error:
        result.error, result.mod_error = str(trace["error"]), True


def _error_text(payload: Any) -> tuple[str, bool]:
    err = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(err, dict):
        return str(payload)[:300], False
    blob = f"{err.get('type')} {err.get('code')} {err.get('message')}"
    return str(err.get("message", blob))[:300], "mod" in blob.lower()


async def run_one(client: httpx.AsyncClient, spec: Spec, model: str, arm: Arm, prompt: Prompt, sample: int) -> Result:
    result = Result(model=model, arm=arm.name, prompt_id=prompt.id, sample=sample)
    body = {
        "model": model_name(model, arm),
        "messages": prompt.messages,
        "max_tokens": spec.max_tokens,
        "temperature": spec.temperature,
        "seed": spec.seed + sample,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    parts: list[str] = []
    try:
        async with client.stream("POST", "chat/completions", json=body) as response:
            if response.status_code != 200:
                payload = json.loads(await response.aread() or b"{}")
                result.error, result.mod_error = _error_text(payload)
                result.total_ms = (time.perf_counter() - start) * 1000
                result.trace_id = response.headers.get("x-request-id")
                return result
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    result.error, result.mod_error = _error_text(chunk)
                    continue
                result.trace_id = chunk.get("id", result.trace_id)
                for choice in chunk.get("choices", []):
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        if result.ttft_ms is None:
                            result.ttft_ms = (time.perf_counter() - start) * 1000
                        parts.append(piece)
                    if choice.get("finish_reason"):
                        result.finish_reason = choice["finish_reason"]
                usage = chunk.get("usage")
                if usage:
                    result.prompt_tokens = int(usage.get("prompt_tokens", 0))
                    result.completion_tokens = int(usage.get("completion_tokens", 0))
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:300]
    result.total_ms = (time.perf_counter() - start) * 1000
    result.text = "".join(parts)
    if result.trace_id:
        try:
            trace = await client.get(f"traces/{result.trace_id}")
            if trace.status_code == 200:
                apply_trace(result, trace.json())
        except httpx.HTTPError:
            pass  # the answer stands; only its intervention detail is missing
    return result


_UNREACHED = ("ConnectError", "ConnectTimeout", "RemoteProtocolError", "ReadError")


class EndpointError(Exception):
    """The endpoint cannot be reached at all: stop at once rather than record every request as failed."""


async def run_async(
    spec: Spec, prompts: list[Prompt], store: Store, scorers: dict[str, ScoreFn], progress: Progress | None = None
) -> int:
    todo = jobs(spec, prompts, store.done())
    fields = {p.id: p.fields for p in prompts}
    key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
    headers = {"authorization": f"Bearer {key}"} if key else {}
    base = spec.base_url.rstrip("/") + "/"
    limits = httpx.Limits(max_connections=spec.concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=spec.timeout_s, limits=limits) as client:
        try:
            await client.get("models")
        except httpx.HTTPError as exc:
            raise EndpointError(f"{spec.base_url}: cannot connect ({type(exc).__name__})") from exc
        queue: asyncio.Queue[tuple[str, Arm, Prompt, int]] = asyncio.Queue()
        for job in todo:
            queue.put_nowait(job)

        async def worker() -> None:
            while not queue.empty():
                model, arm, prompt, sample = queue.get_nowait()
                result = await run_one(client, spec, model, arm, prompt, sample)
                result.scores = (
                    score(scorers, result.text, fields[prompt.id])
                    if result.error is None
                    else {name: False for name in scorers}
                )
                if result.error is not None and result.error.startswith(_UNREACHED):
                    continue  # the server went away: not an outcome to record; a rerun retries it
                store.put(result)
                if progress is not None:
                    progress(1)

        await asyncio.gather(*(worker() for _ in range(min(spec.concurrency, max(1, len(todo))))))
    return len(todo)
