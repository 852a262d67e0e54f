"""Settings of the serving process (`quote serve`), read from QUOTE_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServeSettings", "get_settings"]


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUOTE_", extra="ignore")

    model: str | None = Field(None, description="Hugging Face id or local path; None builds the offline tiny model")
    dtype: str | None = Field(None, description="auto, float32, float16, bfloat16 or int8 (CPU); None: as load_model")
    served_model_name: str | None = Field(None, description="Name clients use in `model`; defaults to the model id")
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = Field(32, ge=1, description="Requests sharing one batched forward pass")
    mod_budget_ms: float = Field(2000.0, gt=0, description="Time budget of one mod call, in milliseconds")
    mod_isolation: Literal["auto", "inline", "process"] = Field(
        "auto",
        description="process: per-tenant confined worker processes; inline: mods on the engine thread (one trusted"
        " tenant); auto: inline in dev mode, process otherwise",
    )
    mod_isolation_weak: bool = Field(
        False, description="Run tenants' mods even when a confinement layer cannot be applied on this host"
    )
    mod_memory_mb: int = Field(2048, ge=256, description="Address-space cap of one mod worker (process isolation)")
    trace_top_k: int = Field(5, ge=0, le=20, description="Top-k logprobs recorded per step in every trace")
    max_request_bytes: int = Field(1 << 20, ge=1024, description="Largest request body accepted (413 above)")
    max_tokens_default: int = Field(256, ge=1, description="max_tokens when a chat request gives none")
    registry_url: str | None = Field(None, description="Mod registry; None: the embedded local mod store")
    registry_api_key: SecretStr | None = Field(None, description="API key this server resolves mods with")
    dev_mode: bool | None = Field(
        None,  # None: decided in _default_dev_mode, so it is always a bool after validation
        description="Accept unsigned mods; default: on for the embedded store, off with a registry",
    )
    # Observability. Tracing is configured by the standard OTEL_* variables (see quote_serving.observability).
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics on GET /metrics")
    metrics_token: SecretStr | None = Field(
        None, min_length=16, description="GET /metrics needs 'Authorization: Bearer <this>'; unset: open"
    )
    share_secret: SecretStr | None = Field(
        None,
        min_length=32,
        description="HMAC key of trace share links; unset: random per process in dev mode, sharing off otherwise",
    )
    share_ttl_s: int = Field(7 * 24 * 3600, ge=60, description="How long a trace share link stays valid, in seconds")
    trace_store_url: str | None = Field(
        None, description="Ship finished traces to this trace store (the registry); unset: traces stay in memory"
    )
    trace_store_api_key: SecretStr | None = Field(None, description="Service key for the store; default: registry key")
    replica_name: str = Field("", max_length=128, description="Names this replica in shipped traces (e.g. the pod)")
    # Behind a gateway (QUOTE_GATEWAY_SECRET, shared with it): /v1/* only with its signed tenant header.
    gateway_secret: SecretStr | None = Field(
        None, min_length=32, description="HMAC key of the gateway's x-quote-tenant signatures; unset: no gateway"
    )

    @model_validator(mode="after")
    def _default_dev_mode(self) -> ServeSettings:
        if self.dev_mode is None:
            self.dev_mode = self.registry_url is None
        return self


@lru_cache
def get_settings() -> ServeSettings:
    return ServeSettings()
