"""What crosses the Ray hop between the ingress and an engine replica, one request at a time.

    ingress                                            engine replica
    GenerationRequest ─ to_wire(ModRef) ─► EngineRequest ─► to_generation_request(loaded Mod)
    RequestHandle.publish ◄── EngineUpdate(Snapshot, replica; trace + timings once finished) ◄── stream

A mod never crosses as an object (mods are code, shipped as source): the request names it by
name, version and digest, and the engine replica loads that version itself, once per digest.
Everything here is plain data, so Ray pickles it without touching user code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quote_mod_sdk.generation import GenerationParams, RequestTrace
from quote_mod_sdk.mod import Mod
from quote_serving.engine.sampling import SamplingParams
from quote_serving.runtime.observers import RequestTimings
from quote_serving.runtime.requests import GenerationRequest, Snapshot

__all__ = ["EngineRequest", "EngineUpdate", "ModRef", "to_generation_request", "to_wire"]


@dataclass(frozen=True, slots=True)
class ModRef:
    """One mod version; the engine checks the content it loads against `digest`."""

    name: str
    version: str
    digest: str


@dataclass(frozen=True)
class EngineRequest:
    request_id: str
    prompt_tokens: list[int]
    params: GenerationParams
    sampling: SamplingParams
    mod: ModRef | None
    messages: list[dict[str, Any]] | None
    tenant: str | None
    logprobs: bool
    trace_context: dict[str, str] | None = None


@dataclass(frozen=True)
class EngineUpdate:
    """The request's latest snapshot and which replica made it; once finished, its trace and timings."""

    snapshot: Snapshot
    replica: str
    trace: RequestTrace | None = None
    timings: RequestTimings | None = None


def to_wire(request: GenerationRequest, mod: ModRef | None) -> EngineRequest:
    return EngineRequest(
        request_id=request.request_id,
        prompt_tokens=list(request.prompt_tokens),
        params=request.params,
        sampling=request.sampling,
        mod=mod,
        messages=request.messages,
        tenant=request.tenant,
        logprobs=request.logprobs,
        trace_context=request.trace_context,
    )


def to_generation_request(request: EngineRequest, mod: Mod | None) -> GenerationRequest:
    return GenerationRequest(
        request_id=request.request_id,
        prompt_tokens=list(request.prompt_tokens),
        params=request.params,
        sampling=request.sampling,
        mod=mod,
        messages=request.messages,
        tenant=request.tenant,
        logprobs=request.logprobs,
        trace_context=request.trace_context,
        mod_version=request.mod.version if request.mod else None,
    )
