"""Running a request from a route: submit, wait (or stream), stop on client disconnect."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request

from quote_serving.api.context import ServingContext
from quote_serving.api.errors import ModRequestError, QuoteAPIError, error_body
from quote_serving.api.streaming import HoldbackViolation, StreamCursor
from quote_serving.runtime.requests import GenerationRequest, RequestHandle, Snapshot

__all__ = ["first_news", "raise_for_error", "run_to_end", "sse", "stream_events", "submit"]


def submit(ctx: ServingContext, request: GenerationRequest) -> RequestHandle:
    handle = RequestHandle(request, asyncio.get_running_loop())
    return ctx.runtime.submit(handle)


def raise_for_error(snapshot: Snapshot) -> None:
    if snapshot.error is None:
        return
    if snapshot.error_kind == "engine_error":
        raise QuoteAPIError(snapshot.error, code="engine_error")
    raise ModRequestError(snapshot.error, code=snapshot.error_kind or "mod_failed")


async def _until_disconnected(request: Request) -> None:
    while not await request.is_disconnected():
        await asyncio.sleep(0.25)


async def run_to_end(handle: RequestHandle, request: Request) -> Snapshot:
    """Wait for the result; if the client leaves first, cancel the request in the engine."""
    result = asyncio.ensure_future(handle.result())
    watcher = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({result, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not result.done():
            result.cancel()
            handle.cancel()
    snapshot = await result
    raise_for_error(snapshot)
    return snapshot


async def first_news(handle: RequestHandle, cursor: StreamCursor) -> tuple[Snapshot, str]:
    """Wait until there is text to send or the request ended, so errors can still be a 4xx."""
    snapshot = handle.latest()
    while True:
        if snapshot.finished and snapshot.error:
            raise_for_error(snapshot)
        text = cursor.delta(snapshot)
        if text or snapshot.finished:
            return snapshot, text
        snapshot = await handle.next_snapshot()


def sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n"


async def stream_events(
    handle: RequestHandle,
    cursor: StreamCursor,
    first: tuple[Snapshot, str],
    on_text: Callable[[str], dict[str, Any]],
    on_end: Callable[[Snapshot], list[dict[str, Any]]],
) -> AsyncIterator[str]:
    """SSE body: text deltas as they become safe to send, then the ending chunks and [DONE]."""
    snapshot, text = first
    try:
        while True:
            if text:
                yield sse(on_text(text))
            if snapshot.finished:
                break
            snapshot = await handle.next_snapshot()
            text = cursor.delta(snapshot)
        if snapshot.error:
            kind = "server_error" if snapshot.error_kind == "engine_error" else "mod_error"
            yield sse(error_body(snapshot.error, kind, code=snapshot.error_kind))
            return
        for chunk in on_end(snapshot):
            yield sse(chunk)
        yield sse("[DONE]")
    except HoldbackViolation as exc:
        handle.cancel()
        yield sse(error_body(str(exc), "mod_error", code="holdback_violation"))
    finally:
        if not handle.snapshot.finished:
            handle.cancel()
