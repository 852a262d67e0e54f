"""The route table's rules and its three sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quote_operator.routes import RouteEntry, RouteSource, route_key
from quote_serving.api.errors import ForbiddenError, NotFoundError
from quote_serving.gateway import (
    EmbeddedRoutes,
    OperatorRoutes,
    Route,
    RouteRefresher,
    RoutesError,
    RouteTable,
    StaticRoutes,
)
from quote_serving.gateway.errors import ServiceUnavailableError

A, B = "http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1"


def table() -> RouteTable:
    return RouteTable(
        [
            Route("Qwen/Qwen2.5-7B-Instruct", {"*": (A, B)}, tenants=("acme", "globex"), mods=("no_*", "pinned@1.*")),
            Route("dedicated", {"acme": (A,), "globex": (B,)}, tenants=("acme", "globex")),
            Route("warming", {"*": (A,)}, ready=False),
        ]
    )


def test_base_ids_with_slashes_and_mods_are_told_apart() -> None:
    decision = table().decide("Qwen/Qwen2.5-7B-Instruct/no_apologies@1.2.0", "acme")
    assert (decision.ref.base, decision.ref.mod, decision.ref.ref) == (
        "Qwen/Qwen2.5-7B-Instruct",
        "no_apologies",
        "1.2.0",
    )
    assert decision.replicas == (A, B)
    assert table().decide("Qwen/Qwen2.5-7B-Instruct", "globex").ref.mod is None


def test_unknown_models_and_models_of_other_tenants_get_the_same_404() -> None:
    with pytest.raises(NotFoundError) as unknown:
        table().decide("Qwen/Other", "acme")
    with pytest.raises(NotFoundError) as hidden:
        table().decide("Qwen/Qwen2.5-7B-Instruct", "initech")
    assert unknown.value.code == hidden.value.code == "model_not_found"


def test_mod_patterns_match_names_and_pinned_versions() -> None:
    routes = table()
    routes.decide("Qwen/Qwen2.5-7B-Instruct/pinned@1.4.0", "acme")
    for model in (
        "Qwen/Qwen2.5-7B-Instruct/pinned",
        "Qwen/Qwen2.5-7B-Instruct/pinned@2.0.0",
        "Qwen/Qwen2.5-7B-Instruct/x",
    ):
        with pytest.raises(ForbiddenError):
            routes.decide(model, "acme")


def test_dedicated_replicas_serve_only_their_tenant() -> None:
    assert table().decide("dedicated", "acme").replicas == (A,)
    assert table().decide("dedicated", "globex").replicas == (B,)


def test_a_model_without_ready_replicas_is_503() -> None:
    with pytest.raises(ServiceUnavailableError):
        table().decide("warming", "acme")


def test_static_files_in_yaml_or_json(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(f"routes:\n  - model: m\n    replicas: [{A}/]\n    tenants: [acme]\n    mods: []\n")
    source = StaticRoutes(path)
    (route,) = source.load() or []
    assert route == Route("m", {"*": (A,)}, ("acme",), ())
    assert source.load() is None  # unchanged
    path.write_text(json.dumps({"routes": [{"model": "m", "endpoints": {"acme": [B]}}]}))
    (route,) = source.load() or []
    assert route.replicas_for("acme") == (B,) and route.tenants == ("*",)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("routes:\n  - model: m\n", "either `replicas`"),
        ("routes:\n  - model: m\n    replicas: [http://h:1/api]\n", "OpenAI base URLs"),
        (
            "routes:\n  - {model: m, replicas: ['http://h:1/v1']}\n  - {model: m, replicas: ['http://h:2/v1']}\n",
            "twice",
        ),
        ("routes: [", "routes.yaml"),
        ("routes:\n  - model: m\n    replicas: []\n    colour: blue\n", "colour"),
    ],
)
def test_bad_route_files_say_what_is_wrong(tmp_path: Path, text: str, complaint: str) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    with pytest.raises(RoutesError, match=complaint):
        StaticRoutes(path).load()


def test_a_broken_update_keeps_the_last_good_table(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(f"routes:\n  - {{model: m, replicas: ['{A}']}}\n")
    routes = RouteTable()
    refresher = RouteRefresher(StaticRoutes(path), routes, interval_s=1)
    assert refresher.refresh() and len(routes) == 1
    path.write_text("routes: [")
    with pytest.raises(RoutesError):
        refresher.refresh()
    assert routes.decide("m", "anyone").replicas == (A,)


def _entry(name: str, model: str, **fields: object) -> RouteEntry:
    base = {
        "model": model,
        "source": RouteSource("ml", name, "uid-1", 1),
        "engine": "embedded",
        "runtime": "ray",
        "isolation": "shared",
        "tenants": ("*",),
        "mods": ("*",),
        "endpoints": {"*": A},
        "ready": True,
    }
    return RouteEntry(**{**base, **fields})  # type: ignore[arg-type]


def test_the_operators_configmap_becomes_routes(tmp_path: Path) -> None:
    (tmp_path / route_key("ml", "qwen")).write_text(_entry("qwen", "Qwen/Qwen2.5-7B-Instruct").to_json())
    dedicated = _entry("big", "big", isolation="dedicated", tenants=("acme",), endpoints={"acme": B + "/"})
    (tmp_path / route_key("ml", "big")).write_text(dedicated.to_json())
    (tmp_path / route_key("ml", "junk")).write_text("{not json")
    source = OperatorRoutes(tmp_path)
    routes = RouteTable(source.load() or [])
    assert routes.decide("Qwen/Qwen2.5-7B-Instruct/m", "anyone").replicas == (A,)
    assert routes.decide("big", "acme").replicas == (B,)
    with pytest.raises(NotFoundError):
        routes.decide("big", "globex")
    assert source.load() is None  # nothing changed on disk


def test_the_embedded_source_routes_its_one_model() -> None:
    routes = RouteTable(EmbeddedRoutes("quote-tiny", tenants=["acme"]).load() or [])
    assert routes.decide("quote-tiny/any_mod", "acme").ref.mod == "any_mod"
    with pytest.raises(NotFoundError):
        routes.decide("quote-tiny", "globex")
