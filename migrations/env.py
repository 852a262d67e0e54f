"""Alembic environment for the registry: PostgreSQL in production, SQLite embedded."""

from __future__ import annotations

from alembic import context

from quote_registry.db import make_engine
from quote_registry.models import Base
from quote_registry.settings import RegistrySettings

config = context.config


def _url() -> str:
    return (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or (RegistrySettings().database_url)
    )


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connectable = config.attributes.get("connection") or make_engine(_url())
    if hasattr(connectable, "connect"):
        with connectable.connect() as connection:
            _run(connection)
    else:
        _run(connectable)


def _run(connection: object) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode copies tables instead.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
