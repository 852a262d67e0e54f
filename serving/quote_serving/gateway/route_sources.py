"""Where the route table comes from: one interface, three sources, one refresher.

    StaticRoutes(path)     a YAML or JSON file you write (re-read when it changes)
    OperatorRoutes(dir)    the operator's `quote-routes` ConfigMap mounted as a directory
                           (format: quote_operator/routes.py; kubelet refreshes the files)
    EmbeddedRoutes(model)  the one model of an in-process gateway (`quote serve --gateway`)

    RouteRefresher: every `interval_s`, source.load() in a worker thread ─► RouteTable.replace
    (a source returns None when nothing changed; a source that fails keeps the last good table)

Static file format (JSON has the same shape):

    routes:
      - model: Qwen/Qwen2.5-7B-Instruct          # the name clients send (before "/mod")
        replicas: [http://10.0.0.5:8000/v1, http://10.0.0.6:8000/v1]
        tenants: [acme, globex]                 # default ["*"]: every tenant
        mods: ["*"]                             # default ["*"]; []: the base model only
      - model: big-model
        endpoints:                              # dedicated replicas per tenant, instead of `replicas`
          acme: [http://big-acme:8000/v1]
        tenants: [acme]
        ready: true                             # default true
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from quote_serving.gateway.routes import ALL, Route, RouteTable

__all__ = [
    "EmbeddedRoutes",
    "OperatorRoutes",
    "RouteRefresher",
    "RouteSource",
    "RoutesError",
    "StaticRoutes",
    "parse_routes",
]

logger = logging.getLogger(__name__)


class RoutesError(ValueError):
    """A route file cannot be read or does not follow the format (the message says where)."""


class RouteSource(Protocol):
    def load(self) -> list[Route] | None:
        """The routes now, or None when they have not changed since the last call."""
        ...


class _FileRoute(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    replicas: list[str] | None = None
    endpoints: dict[str, list[str]] | None = None
    tenants: list[str] = Field(default_factory=lambda: [ALL])
    mods: list[str] = Field(default_factory=lambda: [ALL])
    ready: bool = True

    @field_validator("replicas")
    @classmethod
    def _urls(cls, urls: list[str] | None) -> list[str] | None:
        return None if urls is None else [_base_url(u) for u in urls]

    @field_validator("endpoints")
    @classmethod
    def _endpoint_urls(cls, endpoints: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        return None if endpoints is None else {t: [_base_url(u) for u in urls] for t, urls in endpoints.items()}

    @model_validator(mode="after")
    def _one_of(self) -> _FileRoute:
        if (self.replicas is None) == (self.endpoints is None):
            raise ValueError("give either `replicas` (shared) or `endpoints` (per tenant)")
        return self

    def to_route(self) -> Route:
        endpoints = {ALL: self.replicas} if self.replicas is not None else self.endpoints or {}
        return Route(
            self.model,
            {tenant: tuple(urls) for tenant, urls in endpoints.items()},
            tuple(self.tenants),
            tuple(self.mods),
            self.ready,
        )


class _RouteFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routes: list[_FileRoute]


def _base_url(url: str) -> str:
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")) or not url.endswith("/v1"):
        raise ValueError(f"replica URLs are OpenAI base URLs like http://host:8000/v1, not {url!r}")
    return url


def parse_routes(text: str, *, where: str) -> list[Route]:
    """Routes from a YAML or JSON document; RoutesError names the file and the problem."""
    try:
        data: Any = yaml.safe_load(text)
        parsed = _RouteFile.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise RoutesError(f"{where}: {exc}") from exc
    names = [r.model for r in parsed.routes]
    if len(names) != len(set(names)):
        raise RoutesError(f"{where}: a model name appears twice")
    return [r.to_route() for r in parsed.routes]


class StaticRoutes:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None

    def load(self) -> list[Route] | None:
        try:
            stat = self.path.stat()
            signature = (stat.st_mtime_ns, stat.st_size)
            if signature == self._seen:
                return None
            self._seen = signature  # a broken file is reported once, not on every refresh
            return parse_routes(self.path.read_text(), where=str(self.path))
        except OSError as exc:
            raise RoutesError(f"cannot read routes from {self.path}: {exc.strerror}") from exc


class OperatorRoutes:
    """Entries the operator wrote; one URL per tenant (a Kubernetes Service spreads it over pods)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._seen: tuple[tuple[str, int, int], ...] | None = None

    def load(self) -> list[Route] | None:
        from quote_operator.routes import load_dir  # the format module alone: no kopf, no Kubernetes client

        signature = tuple(_stamp(f) for f in sorted(self.directory.glob("*.json")))
        if signature == self._seen:
            return None
        self._seen = signature
        entries = load_dir(self.directory)
        return [
            Route(
                entry.model,
                {tenant: (url.rstrip("/"),) for tenant, url in entry.endpoints.items()},
                tuple(entry.tenants),
                tuple(entry.mods),
                entry.ready,
            )
            for entry in entries.values()
        ]


def _stamp(file: Path) -> tuple[str, int, int]:
    try:
        stat = file.stat()  # follows kubelet's symlinks to the current copy
    except OSError:  # swapped away between listing and looking
        return (file.name, 0, 0)
    return (file.name, stat.st_mtime_ns, stat.st_size)


class EmbeddedRoutes:
    """The in-process gateway's single model, served by the app it wraps (no URLs)."""

    IN_PROCESS = "in-process"

    def __init__(self, model: str, *, tenants: Sequence[str] = (ALL,), mods: Sequence[str] = (ALL,)) -> None:
        self._route: Route | None = Route(model, {ALL: (self.IN_PROCESS,)}, tuple(tenants), tuple(mods))

    def load(self) -> list[Route] | None:
        route, self._route = self._route, None
        return None if route is None else [route]


class RouteRefresher:
    """Keeps a RouteTable in step with its source."""

    def __init__(self, source: RouteSource, table: RouteTable, interval_s: float) -> None:
        self.source, self.table, self.interval_s = source, table, interval_s
        self._task: asyncio.Task[None] | None = None

    def refresh(self) -> bool:
        """Load now (blocking); True when the table changed. Errors propagate (start-up wants them)."""
        routes = self.source.load()
        if routes is None:
            return False
        self.table.replace(routes)
        logger.info("route table: %d models (%s)", len(routes), ", ".join(sorted(r.model for r in routes)))
        return True

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await asyncio.to_thread(self.refresh)
            except (RoutesError, OSError, ValueError) as exc:
                logger.error("route table not updated, keeping the last good one: %s", exc)
