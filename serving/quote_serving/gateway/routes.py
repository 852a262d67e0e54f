"""The route table: which replicas serve a model name, for which tenants, with which mods.

    request `model` ─ parse_model (api/model_names.py, against the table's names) ─► ModelRef(base, mod, ref)
        ─ unknown base, or a tenant the route does not list ─► 404 (the same answer: no oracle)
        ─ a mod the route does not allow                    ─► 403
        ─ route not ready, or no replica for this tenant    ─► 503
        ─ else ─► Decision(route, ref, replicas)

Rules follow the operator's route format (quote_operator/routes.py): `tenants` and `mods` are
lists where "*" means everyone/anything, and mod entries are glob patterns matched against the mod
name, or `name@ref` when the request pins a version. Mods of other tenants are written
"<owner>:<mod>", as the registry names them. The table is replaced whole when its source
changes (route_sources.py); readers always see one consistent snapshot.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from quote_serving.api.errors import BadRequestError, ForbiddenError, NotFoundError
from quote_serving.api.model_names import InvalidModelError, ModelRef, UnknownModelError, parse_model
from quote_serving.gateway.errors import ServiceUnavailableError

__all__ = ["ALL", "Decision", "Route", "RouteTable"]

ALL = "*"


@dataclass(frozen=True, slots=True)
class Route:
    """One served model name. `endpoints` maps a tenant (or "*") to its replicas' base URLs (…/v1)."""

    model: str
    endpoints: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tenants: tuple[str, ...] = (ALL,)
    mods: tuple[str, ...] = (ALL,)
    ready: bool = True

    def allows_tenant(self, tenant: str) -> bool:
        return ALL in self.tenants or tenant in self.tenants

    def allows_mod(self, name: str, ref: str | None) -> bool:
        candidates = (name,) if ref is None else (name, f"{name}@{ref}")
        return any(fnmatch.fnmatchcase(c, pattern) for pattern in self.mods for c in candidates)

    def replicas_for(self, tenant: str) -> tuple[str, ...]:
        return self.endpoints.get(tenant) or self.endpoints.get(ALL) or ()


@dataclass(frozen=True, slots=True)
class Decision:
    route: Route
    ref: ModelRef
    replicas: tuple[str, ...]


def _unknown(model: str) -> NotFoundError:
    return NotFoundError(
        f"The model '{model}' does not exist or you do not have access to it.", param="model", code="model_not_found"
    )


class RouteTable:
    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self._routes: dict[str, Route] = {}
        self.replace(routes)

    def replace(self, routes: Iterable[Route]) -> None:
        self._routes = {route.model: route for route in routes}

    def __len__(self) -> int:
        return len(self._routes)

    @property
    def routes(self) -> list[Route]:
        return list(self._routes.values())

    def visible_to(self, tenant: str) -> list[Route]:
        return [r for r in self._routes.values() if r.allows_tenant(tenant)]

    def decide(self, model: str, tenant: str) -> Decision:
        """Where `tenant`'s request for `model` goes; a 404, 403 or 503 in OpenAI's shape otherwise."""
        routes = self._routes
        ref = self._parse(routes, model)
        route = routes[ref.base]
        if not route.allows_tenant(tenant):
            raise _unknown(model)
        if ref.mod is not None and not route.allows_mod(ref.mod, ref.ref):
            raise ForbiddenError(
                f"The model '{ref.base}' does not serve the mod '{ref.mod}'.", param="model", code="mod_not_allowed"
            )
        replicas = route.replicas_for(tenant)
        if not route.ready or not replicas:
            raise ServiceUnavailableError(
                f"The model '{ref.base}' has no ready replicas yet; retry shortly.", code="model_not_ready"
            )
        return Decision(route, ref, replicas)

    @staticmethod
    def _parse(routes: Mapping[str, Route], model: str) -> ModelRef:
        # Only bases that could prefix `model` are offered to the one parser: cheap with many routes.
        bases = [model[:i] for i, c in enumerate(model) if c == "/" and model[:i] in routes]
        if model in routes:
            bases.append(model)
        try:
            return parse_model(model, bases)
        except UnknownModelError as exc:
            raise _unknown(model) from exc
        except InvalidModelError as exc:
            raise BadRequestError(str(exc), param="model", code="invalid_model") from exc
