"""Registry settings (QUOTE_REGISTRY_* environment variables)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_db() -> str:
    return f"sqlite:///{Path.home() / '.quote' / 'registry.db'}"


class RegistrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUOTE_REGISTRY_", extra="ignore")

    database_url: str = Field(
        default_factory=_default_db, description="SQLAlchemy URL: postgresql+psycopg://… or sqlite:///…"
    )
    dev_mode: bool = Field(False, description="Accept unsigned bundles (never in production)")
    max_bundle_bytes: int = Field(512 * 1024, ge=1024, description="Largest canonical bundle accepted")
    resolve_cache_size: int = Field(4096, ge=0, description="Resolved bundles kept in memory, keyed by digest")
    share_secret: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("QUOTE_REGISTRY_SHARE_SECRET", "QUOTE_SHARE_SECRET", "share_secret"),
        description="The replicas' QUOTE_SHARE_SECRET: their trace share links then open from the trace store",
    )
    share_ttl_s: int = Field(7 * 86400, ge=60, description="How long a share link issued by the registry lasts")
    trace_max_age_days: float = Field(14, gt=0, description="Traces older than this are deleted")
    trace_max_per_tenant: int = Field(100_000, ge=1, description="Each tenant keeps at most this many traces")
    trace_prune_interval_s: float = Field(300, gt=0, description="How often the retention job runs")
    bootstrap_admin_key: str | None = Field(
        None, description="If set and no admin key exists, create the admin tenant with this key at start-up"
    )

    @model_validator(mode="after")
    def _no_dev_mode_on_postgres_without_intent(self) -> RegistrySettings:
        if self.bootstrap_admin_key is not None and len(self.bootstrap_admin_key) < 32:
            raise ValueError("bootstrap_admin_key must be at least 32 characters")
        return self


@lru_cache
def get_settings() -> RegistrySettings:
    return RegistrySettings()
