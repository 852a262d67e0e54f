"""The deployable artefacts agree with the code: Serve config, operator contract, Dockerfile, KServe examples."""

from __future__ import annotations

import re
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


def test_operator_generated_serve_config_builds() -> None:
    from quote_operator.render.ray import serve_config
    from quote_operator.settings import OperatorSettings
    from quote_operator.spec import parse

    spec = parse("qwen", "models", {"model": "Qwen/Qwen2.5-0.5B-Instruct", "autoscaling": {"maxReplicas": 3}})
    (application,) = serve_config(spec, OperatorSettings())["applications"]
    args = QuoteAppArgs.model_validate(application["args"])
    assert (args.min_replicas, args.max_replicas, args.num_cpus) == (1, 3, 2.0)
    app_builder(application["args"])


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ({"min_replicas": 3, "max_replicas": 2}, "max_replicas"),
        ({"max_replica": 2}, "max_replica"),  # a typo is refused, not ignored
        ({"engine": "sglang"}, "engine"),
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
