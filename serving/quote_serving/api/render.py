"""OpenAI response objects (chat completions, completions, their stream chunks) from snapshots."""

from __future__ import annotations

import time
from typing import Any

from quote_serving.runtime.requests import Snapshot

__all__ = ["chat_chunk", "chat_completion", "completion", "completion_chunk", "finish_reason", "usage"]


def usage(snapshot: Snapshot) -> dict[str, int]:
    completion_tokens = len(snapshot.output)
    return {
        "prompt_tokens": snapshot.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": snapshot.prompt_tokens + completion_tokens,
    }


def finish_reason(snapshot: Snapshot) -> str | None:
    if not snapshot.finished:
        return None
    return snapshot.finish_reason if snapshot.finish_reason in ("stop", "length", "tool_calls") else "stop"


def _chat_logprobs(snapshot: Snapshot, tokenizer: Any) -> dict[str, Any] | None:
    if not snapshot.logprobs:
        return None

    def entry(token: int, logprob: float) -> dict[str, Any]:
        text = tokenizer.decode([token])
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

    content = []
    for token, (logprob, top) in zip(snapshot.output, snapshot.logprobs):
        item = entry(token, logprob if logprob is not None else 0.0)
        item["top_logprobs"] = [entry(t, lp) for t, lp in top]
        content.append(item)
    return {"content": content}


def chat_completion(request_id: str, model: str, snapshot: Snapshot, tokenizer: Any, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": snapshot.text or ""}
    if snapshot.tool_calls:
        message["tool_calls"] = snapshot.tool_calls
        message["content"] = snapshot.text or None
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": _chat_logprobs(snapshot, tokenizer),
                "finish_reason": finish_reason(snapshot),
            }
        ],
        "usage": usage(snapshot),
    }


def chat_chunk(
    request_id: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def tool_call_deltas(tool_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"index": i, **call} for i, call in enumerate(tool_calls)]


def completion(
    request_id: str, model: str, snapshot: Snapshot, tokenizer: Any, created: int, echo: str
) -> dict[str, Any]:
    logprobs = None
    if snapshot.logprobs:
        tokens = [tokenizer.decode([t]) for t in snapshot.output]
        logprobs = {
            "tokens": tokens,
            "token_logprobs": [lp for lp, _ in snapshot.logprobs],
            "top_logprobs": [{tokenizer.decode([t]): lp for t, lp in top} for _, top in snapshot.logprobs],
        }
    return {
        "id": request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "text": echo + (snapshot.text or ""),
                "logprobs": logprobs,
                "finish_reason": finish_reason(snapshot),
            }
        ],
        "usage": usage(snapshot),
    }


def completion_chunk(request_id: str, model: str, created: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
    }


def now() -> int:
    return int(time.time())
