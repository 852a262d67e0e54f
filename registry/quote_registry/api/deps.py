"""Dependencies of registry routes: the DB session (one transaction per request) and the caller."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session, sessionmaker

from quote_registry.errors import Unauthorized
from quote_registry.models import MAX_ID
from quote_registry.services.auth import Principal, authenticate
from quote_registry.settings import RegistrySettings


@dataclass
class RegistryState:
    sessions: sessionmaker[Session]
    settings: RegistrySettings


def _state(request: Request) -> RegistryState:
    state: RegistryState = request.app.state.registry
    return state


def _session(state: Annotated[RegistryState, Depends(_state)]) -> Iterator[Session]:
    with state.sessions() as session, session.begin():
        yield session


def bearer_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    key = token.strip() if scheme.lower() == "bearer" else request.headers.get("x-api-key", "")
    if not key:
        raise Unauthorized("You didn't provide an API key (Authorization: Bearer <key>).")
    return key


def _principal(request: Request, session: Annotated[Session, Depends(_session, scope="function")]) -> Principal:
    return authenticate(session, bearer_key(request))


StateDep = Annotated[RegistryState, Depends(_state)]
# scope="function": commit (or fail) before the response is sent, so a 2xx means it is durable.
SessionDep = Annotated[Session, Depends(_session, scope="function")]
CallerDep = Annotated[Principal, Depends(_principal)]
# Pagination over INTEGER ids: a cursor past the largest id would overflow PostgreSQL's column (a 500).
IdCursor = Annotated[int, Query(ge=0, le=MAX_ID)]
