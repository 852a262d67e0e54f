"""Registry settings (QUOTE_REGISTRY_* environment variables)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
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
