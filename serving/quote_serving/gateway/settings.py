"""Settings of the gateway (`quote gateway`, or `quote serve --gateway` in-process): QUOTE_GATEWAY_*.

The registry URL and service key fall back to QUOTE_REGISTRY_URL / QUOTE_REGISTRY_API_KEY, the
names `quote serve` already uses, so one environment configures both.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["GatewaySettings"]


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUOTE_GATEWAY_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = 8080
    # Routes: exactly one source. `routes` is a YAML/JSON file; `routes_dir` a mounted `quote-routes` ConfigMap.
    routes: Path | None = Field(None, description="Static route table (YAML or JSON); re-read when it changes")
    routes_dir: Path | None = Field(None, description="The operator's route ConfigMap, mounted as a directory")
    routes_refresh_s: float = Field(2.0, gt=0, description="How often route sources are checked for changes")

    registry_url: str | None = Field(
        None, validation_alias=AliasChoices("QUOTE_GATEWAY_REGISTRY_URL", "QUOTE_REGISTRY_URL", "registry_url")
    )
    registry_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("QUOTE_GATEWAY_REGISTRY_API_KEY", "QUOTE_REGISTRY_API_KEY", "registry_api_key"),
        description="A `service` key: introspects callers' keys and writes usage records",
    )
    auth_ttl_s: float = Field(
        5.0, gt=0, le=300, description="How long a key's introspection is trusted: a revocation bites within this"
    )
    auth_stale_s: float = Field(
        30.0, ge=0, description="While the registry is unreachable, keep using answers at most this much older"
    )
    auth_cache_size: int = Field(100_000, ge=16, description="Keys remembered (valid and invalid ones)")

    secret: SecretStr | None = Field(
        None, min_length=32, description="HMAC key shared with replicas: signs the tenant header sent upstream"
    )
    metrics_token: SecretStr | None = Field(
        None, min_length=16, description="GET /metrics needs 'Authorization: Bearer <this>'; unset: open"
    )
    redis_url: str | None = Field(None, description="redis://host:port/db: limits shared by every gateway replica")
    default_requests_per_minute: int | None = Field(None, ge=1, description="For keys without their own limit")
    default_tokens_per_minute: int | None = Field(None, ge=1, description="For keys without their own limit")
    default_max_concurrent: int | None = Field(None, ge=1, description="For keys without their own limit")
    default_max_tokens: int = Field(
        256, ge=1, description="Completion tokens reserved against tokens/minute when a request names no max_tokens"
    )
    concurrency_lease_s: float = Field(
        900.0, gt=0, description="A concurrency slot a crashed gateway never released frees itself after this"
    )

    max_request_bytes: int = Field(1 << 20, ge=1024, description="Largest request body (413 above)")
    body_timeout_s: float = Field(15.0, gt=0, description="A client must send its whole body within this (408)")
    connect_timeout_s: float = Field(2.0, gt=0, description="Connecting to a replica; a failure tries another")
    read_timeout_s: float = Field(
        60.0, gt=0, description="Longest silence from a replica: before its answer starts, and between stream chunks"
    )
    request_timeout_s: float = Field(
        300.0, gt=0, description="Longest a whole non-streaming request may take (streams: read_timeout_s per chunk)"
    )
    max_attempts: int = Field(
        3, ge=1, le=10, description="Replicas tried per request, only where it never reached one (refused, 503)"
    )
    eject_s: float = Field(5.0, ge=0, description="A replica that refused a connection is skipped for this long")
    outlier_5xx: int = Field(3, ge=1, description="5xx answers or dropped requests in a row that eject a replica")
    health_interval_s: float = Field(2.0, gt=0, description="How often every replica's /readyz is checked")
    health_timeout_s: float = Field(1.0, gt=0, description="A /readyz check slower than this counts as not ready")

    usage_flush_s: float = Field(1.0, gt=0, description="Usage records are sent to the registry this often")
    usage_batch: int = Field(500, ge=1, le=1000, description="Most records per registry call")
    usage_buffer: int = Field(100_000, ge=100, description="Records kept while the registry is unreachable")

    @model_validator(mode="after")
    def _one_route_source(self) -> GatewaySettings:
        if self.routes is not None and self.routes_dir is not None:
            raise ValueError("give either routes (a file) or routes_dir (the operator's ConfigMap), not both")
        return self
