"""Turning a validated API body into a runtime `GenerationRequest` (model, mod, prompt, params)."""

from __future__ import annotations

import uuid
from typing import Any

from quote_mod_sdk.generation import GenerationParams
from quote_registry.client import RegistryClientError
from quote_serving.api.context import ServingContext
from quote_serving.api.errors import BadRequestError, ForbiddenError, NotFoundError, UpstreamError
from quote_serving.api.model_names import InvalidModelError, ModelRef, UnknownModelError, parse_model
from quote_serving.api.schemas import ChatCompletionRequest, CompletionRequest
from quote_serving.engine.sampling import SamplingParams
from quote_serving.mods.registry_source import ModRejectedError
from quote_serving.mods.store import ModVersion, UnknownModError
from quote_serving.runtime.isolation import ModIsolationRefusedError
from quote_serving.runtime.requests import GenerationRequest

__all__ = ["build_chat_request", "build_completion_request", "resolve_model"]


def resolve_model(ctx: ServingContext, model: str, tenant: str | None = None) -> tuple[ModelRef, ModVersion | None]:
    """The base model and mod a `model` string names (as `tenant` sees mods); 404 in OpenAI's words otherwise."""
    try:
        ref = parse_model(model, ctx.served_models)
    except UnknownModelError as exc:
        raise NotFoundError(str(exc), param="model", code="model_not_found") from exc
    except InvalidModelError as exc:
        raise BadRequestError(str(exc), param="model", code="invalid_model") from exc
    if ref.mod is None:
        return ref, None
    try:
        if tenant is None:
            return ref, ctx.mods.resolve(ref.mod, ref.ref)
        return ref, ctx.mods.resolve(ref.mod, ref.ref, tenant=tenant)
    except UnknownModError as exc:
        raise NotFoundError(str(exc), param="model", code="mod_not_found") from exc
    except ModIsolationRefusedError as exc:
        raise ForbiddenError(str(exc), param="model", code="mod_isolation_unavailable") from exc
    except ModRejectedError as exc:
        raise ForbiddenError(str(exc), param="model", code="mod_signature_rejected") from exc
    except RegistryClientError as exc:
        raise UpstreamError(f"the mod registry failed: {exc.message}", code="registry_unavailable") from exc


def _chat_prompt(ctx: ServingContext, body: ChatCompletionRequest) -> list[int]:
    messages = [m.model_dump(exclude_none=True) for m in body.messages]
    try:
        ids = ctx.tokenizer.apply_chat_template(
            messages, tools=body.tools, add_generation_prompt=True, tokenize=True, return_dict=False
        )
    except Exception as exc:
        raise BadRequestError(
            f"messages could not be rendered with the chat template: {exc}", param="messages"
        ) from exc
    return list(ids["input_ids"] if isinstance(ids, dict) else ids)


def _completion_prompt(ctx: ServingContext, body: CompletionRequest) -> list[int]:
    if isinstance(body.prompt, str):
        return list(ctx.tokenizer.encode(body.prompt, add_special_tokens=False))
    vocab = ctx.runtime.backend.vocab_size
    if any(not isinstance(t, int) or t < 0 or t >= vocab for t in body.prompt):
        raise BadRequestError(f"prompt token ids must be integers in [0, {vocab})", param="prompt")
    return [int(t) for t in body.prompt]


def _params(
    ctx: ServingContext,
    prompt: list[int],
    max_tokens: int,
    stop: list[str] | None,
    top_logprobs: int = 0,
    ignore_eos: bool = False,
) -> GenerationParams:
    if not prompt:
        raise BadRequestError("the prompt is empty", param="prompt")
    if len(prompt) + max_tokens > ctx.context_window:
        raise BadRequestError(
            f"This model's maximum context length is {ctx.context_window} tokens. However, you requested "
            f"{len(prompt) + max_tokens} tokens ({len(prompt)} in the messages, {max_tokens} in the completion).",
            param="messages",
            code="context_length_exceeded",
        )
    eos = ctx.tokenizer.eos_token_id
    return GenerationParams(
        max_tokens=max_tokens,
        stop_token_ids=frozenset() if eos is None or ignore_eos else frozenset({eos}),
        stop=tuple(stop or ()),
        top_logprobs=max(ctx.settings.trace_top_k, top_logprobs),
    )


def _sampling(ctx: ServingContext, body: Any, top_logprobs: int) -> SamplingParams:
    """The request's sampling; temperature/top_p the client left out come from the model's own defaults."""
    given, defaults = body.model_fields_set, ctx.sampling_defaults
    return SamplingParams(
        temperature=body.temperature if "temperature" in given else defaults.get("temperature", body.temperature),
        top_p=body.top_p if "top_p" in given else defaults.get("top_p", body.top_p),
        top_k=max(0, body.top_k),
        seed=body.seed,
        top_logprobs=top_logprobs,
    )


def build_chat_request(ctx: ServingContext, body: ChatCompletionRequest, tenant: str | None) -> GenerationRequest:
    _, version = resolve_model(ctx, body.model, tenant)
    prompt = _chat_prompt(ctx, body)
    max_tokens = body.token_budget or min(ctx.settings.max_tokens_default, ctx.context_window - len(prompt))
    return GenerationRequest(
        request_id=f"chatcmpl-{uuid.uuid4().hex}",
        prompt_tokens=prompt,
        # (type: ignore below: stop is validated to a list by the schema)
        params=_params(ctx, prompt, max_tokens, body.stop, body.top_logprobs or 0, body.ignore_eos),  # type: ignore[arg-type]
        sampling=_sampling(ctx, body, body.top_logprobs or 0),
        mod=None if version is None else version.mod,
        mod_version=None if version is None else version.version,
        messages=[m.model_dump(exclude_none=True) for m in body.messages],
        tenant=tenant,
        logprobs=body.logprobs,
    )


def build_completion_request(ctx: ServingContext, body: CompletionRequest, tenant: str | None) -> GenerationRequest:
    _, version = resolve_model(ctx, body.model, tenant)
    prompt = _completion_prompt(ctx, body)
    return GenerationRequest(
        request_id=f"cmpl-{uuid.uuid4().hex}",
        prompt_tokens=prompt,
        # (type: ignore below: stop is validated to a list by the schema)
        params=_params(ctx, prompt, body.max_tokens, body.stop, body.logprobs or 0, body.ignore_eos),  # type: ignore[arg-type]
        sampling=_sampling(ctx, body, body.logprobs or 0),
        mod=None if version is None else version.mod,
        mod_version=None if version is None else version.version,
        messages=None,
        tenant=tenant,
        logprobs=body.logprobs is not None,
    )
