"""The deployable artefacts agree with the code: Serve config, operator contract, Dockerfile, KServe examples."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from quote_serving.kserve.server import build_parser
from quote_serving.ray_serve import QuoteAppArgs, app_builder
from tests.ray.conftest import REPO, SERVE_CONFIG

DOCKERFILE = REPO / "docker" / "Dockerfile"
KSERVE_EXAMPLES = REPO / "examples" / "kserve"


def test_serve_config_is_a_valid_serve_deploy_config_whose_app_builds() -> None:
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load(SERVE_CONFIG.read_text())
    schema = ServeDeploySchema.model_validate(config)
    for application in schema.applications:
        assert application.import_path == "quote_serving.ray_serve.app:app_builder"
        built = app_builder(application.args)
        assert type(built).__name__ == "Application"


@pytest.mark.parametrize(
    ("engine", "gpus", "actor"),
    [
        ("embedded", 0, {"num_cpus": 2.0}),
        ("sglang", 1, {"num_cpus": 2.0, "num_gpus": 1}),  # one GPU per replica, from the QuoteModel
    ],
)
def test_operator_generated_serve_config_builds(engine: str, gpus: int, actor: dict[str, float]) -> None:
    from quote_operator.render.ray import serve_config
    from quote_operator.settings import OperatorSettings
    from quote_operator.spec import parse

    spec = parse(
        "qwen",
        "models",
        {
            "model": "Qwen/Qwen2.5-0.5B-Instruct",
            "engine": engine,
            "resources": {"gpus": gpus},
            "autoscaling": {"maxReplicas": 3},
        },
    )
    (application,) = serve_config(spec, OperatorSettings())["applications"]
    args = QuoteAppArgs.model_validate(application["args"])
    assert (args.engine, args.min_replicas, args.max_replicas, args.num_cpus) == (engine, 1, 3, 2.0)
    assert args.engine_options()["ray_actor_options"] == actor
    loaded = set(sys.modules)
    app_builder(application["args"])
    imported = {name for name in set(sys.modules) - loaded if name.split(".")[0] == "sglang"}
    assert not imported  # building (on Serve's controller, no GPU) never imports sglang


def test_sglang_engine_args_default_to_one_gpu_and_become_sglang_settings() -> None:
    args = QuoteAppArgs(engine="sglang", dtype="bfloat16", max_batch=64, sglang={"attention_backend": "triton"})
    assert args.num_gpus == 1 and args.engine_options()["ray_actor_options"]["num_gpus"] == 1
    settings = args.sglang_settings()
    assert (settings.dtype, settings.attention_backend, settings.max_running_requests) == ("bfloat16", "triton", 64)
    assert settings.server_args()["disable_overlap_schedule"] is True  # what Quote's plugin depends on


def test_sglang_keeps_quotes_plugin_in_sglangs_allow_list() -> None:
    from quote_serving.ray_serve.engine import keep_quote_plugin

    unset: dict[str, str] = {}
    keep_quote_plugin(unset)
    assert unset == {}  # unset: SGLang loads every installed plugin, Quote's included
    others = {"SGLANG_PLUGINS": "other, quote"}
    keep_quote_plugin(others)
    assert others == {"SGLANG_PLUGINS": "other, quote"}
    without = {"SGLANG_PLUGINS": "__none__"}
    keep_quote_plugin(without)
    assert without == {"SGLANG_PLUGINS": "__none__,quote"}


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ({"min_replicas": 3, "max_replicas": 2}, "max_replicas"),
        ({"max_replica": 2}, "max_replica"),  # a typo is refused, not ignored
        ({"engine": "vllm"}, "engine"),
        ({"engine": "sglang", "num_gpus": 0}, "num_gpus must be 1"),
        ({"engine": "sglang", "num_gpus": 2}, "num_gpus must be 1"),
        ({"engine": "sglang", "device": "cpu"}, "leave device unset"),
        ({"engine": "sglang", "sglang": {"attention_backnd": "triton"}}, "attention_backnd"),
        ({"engine": "sglang", "sglang": {"gpu_id": 1}}, "set by the application"),
        ({"engine": "sglang", "sglang": {"mem_fraction_static": "most"}}, "mem_fraction_static"),
        ({"sglang": {"attention_backend": "triton"}}, "for engine: sglang"),
    ],
)
def test_bad_builder_args_are_refused_by_name(args: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        app_builder(args)


def test_autoscaling_and_replica_options_reach_the_engine_deployment() -> None:
    args = QuoteAppArgs(min_replicas=0, max_replicas=4, target_ongoing_requests=2, num_cpus=1, max_batch=16)
    options = args.engine_options()
    assert options["autoscaling_config"]["min_replicas"] == 0  # scale to zero
    assert options["autoscaling_config"]["target_ongoing_requests"] == 2
    assert options["max_ongoing_requests"] == 16 and options["ray_actor_options"] == {"num_cpus": 1}
    assert args.engine_threads == 1


def _copied_paths() -> list[str]:
    """Sources of every COPY in the Dockerfile (continuation lines joined)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    copies = [line.split()[1:-1] for line in text.splitlines() if line.startswith("COPY ")]
    return [source for sources in copies for source in sources]


def test_dockerfile_copies_files_that_exist_and_every_component_folder() -> None:
    copied = _copied_paths()
    for source in copied:
        assert (REPO / source).exists(), f"docker/Dockerfile copies {source}, which does not exist"
    where = re.search(r"^where = \[(.*)\]$", (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert where is not None, "pyproject.toml finds packages in the component folders"
    directories = re.findall(r'"([^"]+)"', where.group(1))
    for directory in {"quote_mod_sdk", *directories}:
        covered = any(f"{directory}/".startswith(path) for path in copied)
        assert covered, f"pyproject.toml installs {directory}/, which the image lacks"


def test_bake_targets_build_the_dockerfile_for_cpu_and_cuda() -> None:
    bake = (REPO / "docker" / "docker-bake.hcl").read_text()
    assert 'dockerfile = "docker/Dockerfile"' in bake
    assert "whl/cpu" in bake and re.search(r"whl/cu\d+", bake)
    assert "ARG TORCH_INDEX_URL" in DOCKERFILE.read_text()


def test_kserve_examples_run_the_entrypoint_with_arguments_it_accepts() -> None:
    runtime = yaml.safe_load((KSERVE_EXAMPLES / "serving-runtime.yaml").read_text())
    (container,) = runtime["spec"]["containers"]
    assert container["command"] == ["python", "-m", "quote_serving.kserve"]
    parsed = build_parser().parse_args([a.replace("{{.Name}}", "quote-tiny") for a in container["args"]])
    port = container["ports"][0]["containerPort"]
    assert parsed.http_port == port and parsed.model_name == "quote-tiny"
    assert {container["readinessProbe"]["httpGet"]["path"], container["livenessProbe"]["httpGet"]["path"]} == {
        "/readyz",
        "/healthz",
    }
    service = yaml.safe_load((KSERVE_EXAMPLES / "inference-service.yaml").read_text())
    assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] in {f["name"] for f in runtime["spec"]["supportedModelFormats"]}


def test_readme_of_the_kserve_example_names_files_that_exist() -> None:
    readme = (KSERVE_EXAMPLES / "README.md").read_text()
    for path in re.findall(r"examples/kserve/[\w.-]+", readme):
        assert (REPO / path).exists(), path


@pytest.mark.parametrize(
    ("env_model", "flags", "served"),
    [
        ("Qwen/Qwen2.5-0.5B-Instruct", [], "Qwen/Qwen2.5-0.5B-Instruct"),  # the operator's QUOTE_MODEL
        ("s3://models/qwen", [], "/mnt/models"),  # a storage URI: what KServe downloaded
        ("", [], None),  # empty: the offline tiny model
        ("Qwen/Qwen2.5-0.5B-Instruct", ["--model", "/local/path"], "/local/path"),  # a flag wins
    ],
)
def test_kserve_entrypoint_takes_the_model_from_flags_or_the_operators_env(
    monkeypatch: pytest.MonkeyPatch, env_model: str, flags: list[str], served: str | None
) -> None:
    from quote_serving.kserve.server import serve_settings

    monkeypatch.setenv("QUOTE_MODEL", env_model)
    monkeypatch.setenv("QUOTE_SERVED_MODEL_NAME", "qwen")
    settings = serve_settings(build_parser().parse_args(["--model_name=isvc", *flags]))
    assert (settings.model, settings.served_model_name) == (served, "qwen")
