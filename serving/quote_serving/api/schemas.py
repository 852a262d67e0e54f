"""Request bodies of the OpenAI-compatible endpoints (pydantic), with OpenAI's bounds.

Unknown fields are ignored (clients send many); unsupported values of known fields are refused
with a 400 naming the parameter, never silently ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from quote_serving.api.bounds import MAX_MAX_TOKENS, MAX_MESSAGES, MAX_SEED, MAX_STOP_LENGTH, MAX_STRING, MAX_TOOLS
from quote_serving.api.model_names import MAX_MODEL_LENGTH

__all__ = ["ChatCompletionRequest", "ChatMessage", "CompletionRequest", "StreamOptions"]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = Field(None, max_length=MAX_STRING)
    name: str | None = Field(None, max_length=256)
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(_Lenient):
    include_usage: bool = False


class _Sampling(_Lenient):
    model: str = Field(min_length=1, max_length=MAX_MODEL_LENGTH)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=-1, le=MAX_MAX_TOKENS, description="0 or -1: off (an extension many servers accept)")
    n: int = Field(1, ge=1, le=1, description="only n=1 is supported")
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    presence_penalty: float = Field(0.0, ge=0.0, le=0.0, description="not supported; must be 0")
    frequency_penalty: float = Field(0.0, ge=0.0, le=0.0, description="not supported; must be 0")
    user: str | None = Field(None, max_length=256)
    ignore_eos: bool = Field(False, description="generate past the stop token (a vLLM extension; benchmarks)")

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        stops = [value] if isinstance(value, str) else value
        if stops is not None and (len(stops) > 4 or any(not s or len(s) > MAX_STOP_LENGTH for s in stops)):
            raise ValueError(f"up to 4 non-empty stop sequences of at most {MAX_STOP_LENGTH} characters")
        return stops or None


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(None, ge=1, le=MAX_MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_MAX_TOKENS)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: str | dict[str, Any] | None = None

    @model_validator(mode="after")
    def _top_logprobs_needs_logprobs(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs requires logprobs=true")
        return self

    @property
    def token_budget(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] = Field(...)
    max_tokens: int = Field(16, ge=1, le=MAX_MAX_TOKENS)
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool = False

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str] | list[int]) -> str | list[int]:
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            if len(value) != 1:
                raise ValueError("only one prompt per request is supported")
            return str(value[0])
        if isinstance(value, list) and not value:
            raise ValueError("prompt must not be empty")
        return value  # type: ignore[return-value]  # validated list of ints
