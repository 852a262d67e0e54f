"""The trace store's retention job: every `trace_prune_interval_s`, drop traces by age and count per tenant.

Runs in each registry process (a daemon thread started and stopped with the app). Several registry
replicas pruning at once is harmless: each DELETE removes what the others have not yet.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from quote_registry.db import transaction
from quote_registry.services import traces
from quote_registry.settings import RegistrySettings

__all__ = ["install_retention", "prune_once"]

logger = logging.getLogger(__name__)


def prune_once(sessions: sessionmaker[Session], settings: RegistrySettings) -> int:
    with transaction(sessions) as session:
        return traces.prune(
            session,
            max_age=timedelta(days=settings.trace_max_age_days),
            max_per_tenant=settings.trace_max_per_tenant,
        )


def install_retention(app: FastAPI, sessions: sessionmaker[Session], settings: RegistrySettings) -> None:
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(settings.trace_prune_interval_s):
            try:
                removed = prune_once(sessions, settings)
                if removed:
                    logger.info("trace retention removed %d traces", removed)
            except Exception:  # a database hiccup must not end the job
                logger.exception("trace retention failed; retrying at the next interval")

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(asgi: Any) -> AsyncIterator[Any]:
        threading.Thread(target=loop, name="quote-trace-retention", daemon=True).start()
        try:
            async with inner(asgi) as state:
                yield state
        finally:
            stop.set()

    app.router.lifespan_context = lifespan
