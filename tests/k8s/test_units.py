"""The operator's pure parts, without an API server: spec rules, rendering, route format, conditions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from quote_operator import InvalidSpec, RouteEntry, RouteSource, load_dir, parse
from quote_operator.conditions import Condition, merge
from quote_operator.errors import Conflict, NotFound, Unavailable, from_status
from quote_operator.kube import RAY_SERVICE, SERVICE
from quote_operator.readiness import observe
from quote_operator.render import Owner, children
from quote_operator.render.ray import cpu_cores
from quote_operator.settings import OperatorSettings

OWNER = Owner("m", "ns", "uid-1", 1)


def spec(**overrides: object) -> dict[str, object]:
    return {"model": "Qwen/Qwen2.5-0.5B-Instruct", **overrides}


def test_parse_applies_schema_defaults() -> None:
    parsed = parse("m", "ns", spec())
    assert (parsed.engine, parsed.runtime, parsed.isolation) == ("embedded", "ray", "shared")
    assert parsed.served_model_name == "Qwen/Qwen2.5-0.5B-Instruct"
    assert (parsed.tenants, parsed.mods) == (("*",), ("*",))
    assert [(d.name, d.tenant) for d in parsed.deployments] == [("m", "*")]


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"autoscaling": {"minReplicas": 3, "maxReplicas": 2}}, "above maxReplicas"),
        ({"engine": "sglang"}, "needs resources.gpus >= 1"),
        ({"engine": "sglang", "resources": {"gpus": 2}}, "set resources.gpus to 1"),
        ({"engine": "sglang", "runtime": "kserve", "resources": {"gpus": 1}}, "served by runtime ray"),
        ({"access": {"isolation": "dedicated"}}, "name each tenant"),
        ({"access": {"tenants": []}}, "nobody could call"),
    ],
)
def test_parse_refuses_what_the_schema_cannot(overrides: dict[str, object], complaint: str) -> None:
    with pytest.raises(InvalidSpec, match=complaint):
        parse("m", "ns", spec(**overrides))


def test_names_must_fit_a_service() -> None:
    with pytest.raises(InvalidSpec, match="cannot name a Service"):
        parse("9lives", "ns", spec())
    with pytest.raises(InvalidSpec, match="cannot name a Service"):
        parse("m" * 60, "ns", spec(access={"tenants": ["acme"], "isolation": "dedicated"}))


def test_dedicated_isolation_renders_one_runtime_and_service_per_tenant() -> None:
    parsed = parse("m", "ns", spec(access={"tenants": ["b", "a"], "isolation": "dedicated"}))
    rendered = children(parsed, OWNER, OperatorSettings())
    assert [(c.kind.kind, c.name) for c in rendered] == [
        ("RayService", "m-a"),
        ("Service", "m-a"),
        ("RayService", "m-b"),
        ("Service", "m-b"),
    ]
    env = {e["name"]: e["value"] for e in _worker(rendered[0].manifest)["env"]}
    assert env["QUOTE_DEDICATED_TENANT"] == "a"


@pytest.mark.parametrize(("engine", "gpus"), [("sglang", 1), ("embedded", 2)])
def test_ray_serve_config_carries_the_app_builder_args(engine: str, gpus: int) -> None:
    parsed = parse("m", "ns", spec(resources={"cpu": "1500m", "gpus": gpus}, engine=engine))
    [rayservice, _] = children(parsed, OWNER, OperatorSettings())
    config = yaml.safe_load(rayservice.manifest["spec"]["serveConfigV2"])
    args = config["applications"][0]["args"]
    assert (args["engine"], args["num_cpus"], args["num_gpus"]) == (engine, 1.5, gpus)
    worker = _worker(rayservice.manifest)
    assert worker["image"].endswith("-cuda") and worker["resources"]["limits"]["nvidia.com/gpu"] == gpus
    assert rayservice.manifest["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_a_registry_reaches_the_replicas_when_configured() -> None:
    settings = OperatorSettings(
        serving={"registry_url": "http://quote-registry.quote-system.svc", "registry_api_key_secret": "quote-serving"}
    )
    [rayservice, _] = children(parse("m", "ns", spec()), OWNER, settings)
    config = yaml.safe_load(rayservice.manifest["spec"]["serveConfigV2"])
    assert config["applications"][0]["args"]["registry_url"] == "http://quote-registry.quote-system.svc"
    env = {e["name"]: e for e in _worker(rayservice.manifest)["env"]}
    assert env["QUOTE_REGISTRY_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "quote-serving"
    [plain, _] = children(parse("m", "ns", spec()), OWNER, OperatorSettings())
    assert "registry_url" not in yaml.safe_load(plain.manifest["spec"]["serveConfigV2"])["applications"][0]["args"]


def test_cpu_quantities_become_cores() -> None:
    assert (cpu_cores("2"), cpu_cores("250m"), cpu_cores("0.5")) == (2.0, 0.25, 0.5)


def test_kserve_downloads_uris_and_names_hub_models() -> None:
    settings = OperatorSettings()
    from_uri = children(parse("m", "ns", spec(runtime="kserve", model="s3://b/m")), OWNER, settings)[0]
    from_hub = children(parse("m", "ns", spec(runtime="kserve")), OWNER, settings)[0]
    assert from_uri.manifest["spec"]["predictor"]["model"]["storageUri"] == "s3://b/m"
    assert "storageUri" not in from_hub.manifest["spec"]["predictor"]["model"]


def test_route_entry_round_trips_and_answers_the_gateways_questions() -> None:
    entry = RouteEntry(
        model="tiny",
        source=RouteSource("ns", "m", "uid", 2),
        engine="embedded",
        runtime="ray",
        isolation="dedicated",
        tenants=("acme", "globex"),
        mods=("no_*", "redact@1.*"),
        endpoints={"acme": "http://m-acme/v1", "globex": "http://m-globex/v1"},
        ready=True,
    )
    again = RouteEntry.from_json(entry.to_json())
    assert again == entry
    assert again.endpoint_for("acme") == "http://m-acme/v1"
    assert again.endpoint_for("initech") is None
    assert again.allows_mod("no_dash") and again.allows_mod("redact", "1.4.0")
    assert not again.allows_mod("redact", "2.0.0") and not again.allows_mod("redact")


def test_load_dir_skips_what_it_cannot_read(tmp_path: Path) -> None:
    good = RouteEntry("tiny", RouteSource("ns", "m", "u", 1), "embedded", "ray", "shared", ("*",), ("*",), {"*": "u"})
    (tmp_path / "ns.m.json").write_text(good.to_json())
    (tmp_path / "ns.bad.json").write_text('{"version": 99}')
    assert load_dir(tmp_path) == {"tiny": good}


def test_conditions_keep_transition_time_while_status_holds() -> None:
    first = merge(None, [Condition("Ready", "False", "Starting")], generation=1)
    first[0]["lastTransitionTime"] = "2000-01-01T00:00:00Z"
    same = merge(first, [Condition("Ready", "False", "StillStarting")], generation=2)
    flipped = merge(first, [Condition("Ready", "True", "Serving")], generation=2)
    assert same[0]["lastTransitionTime"] == "2000-01-01T00:00:00Z" and same[0]["reason"] == "StillStarting"
    assert flipped[0]["lastTransitionTime"] != "2000-01-01T00:00:00Z"


def test_readiness_needs_every_runtime_child() -> None:
    running = {
        "status": {"serviceStatus": "Running", "activeServiceStatus": {"rayClusterStatus": {"readyWorkerReplicas": 2}}}
    }
    ready_condition = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    both = observe([(RAY_SERVICE, "a", running), (RAY_SERVICE, "b", ready_condition), (SERVICE, "a", {})])
    one = observe([(RAY_SERVICE, "a", running), (RAY_SERVICE, "b", None)])
    assert (both.ready, both.replicas) == (True, None)  # b reports no count
    assert (one.ready, one.waiting_for) == (False, ("RayService b",))


def test_settings_come_from_grouped_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUOTE_OPERATOR_ROUTES__NAMESPACE", "ops")
    monkeypatch.setenv("QUOTE_OPERATOR_RETRY__BASE_DELAY_S", "1")
    settings = OperatorSettings()
    assert settings.routes.namespace == "ops"
    assert [settings.backoff(n) for n in (0, 1, 2, 30)] == [1.0, 2.0, 4.0, 300.0]


def test_http_statuses_map_to_errors() -> None:
    assert isinstance(from_status(404, b'{"message": "gone"}', what="get x"), NotFound)
    assert isinstance(from_status(409, None, what="x"), Conflict)
    assert isinstance(from_status(503, b"busy", what="x"), Unavailable)
    assert str(from_status(404, b'{"message": "gone"}', what="get x")) == "get x: gone"


def _worker(rayservice: dict[str, object]) -> dict[str, object]:
    cluster = rayservice["spec"]["rayClusterConfig"]  # type: ignore[index]
    return cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]  # type: ignore[index, no-any-return]
