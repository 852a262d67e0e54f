"""The `quote` CLI against a real registry: keygen, signing keys, publish, list/show/yank/alias."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from quote_cli.main import app

from .conftest import RunningRegistry

SEEDS = Path(__file__).resolve().parents[2] / "examples" / "seeds"
WORKFLOW = Path(__file__).resolve().parents[2] / "examples" / "ci" / "publish-mod.yml"


@pytest.fixture
def cli(registry: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    creds = registry.tenant_with_keys("cli-tenant")
    monkeypatch.setenv("QUOTE_REGISTRY_URL", registry.url)
    monkeypatch.setenv("QUOTE_API_KEY", creds["key"])
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.output

    return run


def test_keygen_register_publish_and_manage(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out = cli("keygen", "--out", "key.pem")
    assert code == 0 and (tmp_path / "key.pem").stat().st_mode & 0o777 == 0o600
    public = out.split("public key:")[1].split()[0]
    assert cli("signing-keys", "add", public, "--name", "ci")[0] == 0
    mod_file = str(SEEDS / "backtrack_phrase.py")
    code, out = cli("mods", "publish", mod_file, "--name", "nope", "--version", "1.0.0", "--key-file", "key.pem")
    assert code == 0 and out.startswith("published: nope 1.0.0 sha256:")
    code, out = cli("mods", "publish", mod_file, "--name", "nope", "--version", "1.0.0", "--key-file", "key.pem")
    assert code == 0 and out.startswith("already published")
    other = str(SEEDS / "ban_em_dash.py")
    code, out = cli("mods", "publish", other, "--name", "nope", "--version", "1.0.0", "--key-file", "key.pem")
    assert code == 1 and out.strip().startswith("error:") and "immutable" in out and len(out.strip().splitlines()) == 1
    assert cli("mods", "alias", "nope", "stable", "1.0.0")[0] == 0
    assert cli("mods", "yank", "nope", "1.0.0", "--reason", "oops")[0] == 0
    code, out = cli("mods", "show", "nope")
    assert code == 0 and '"yanked": true' in out and '"stable": "1.0.0"' in out
    assert '"name": "nope"' in cli("mods", "list")[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mods", "publish", "missing.py", "--name", "x", "--version", "1.0.0"], "neither a .py file nor a folder"),
        (["mods", "publish", str(SEEDS / "skeleton.py"), "--name", "x", "--version", "1.0.0"], "no signing key"),
        (
            ["mods", "publish", str(SEEDS / "skeleton.py"), "--name", "x", "--version", "1.0.0", "--unsigned"],
            "development mode",
        ),
        (
            ["mods", "publish", str(SEEDS / "skeleton.py"), "--name", "x", "--version", "one", "--unsigned"],
            "semantic version",
        ),
        (["mods", "show", "ghost"], "does not exist"),
    ],
)
def test_cli_mistakes_are_one_line_errors(cli, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    code, out = cli(*args)
    assert code == 1 and message in out
    assert len(out.strip().splitlines()) == 1 and "Traceback" not in out


def test_github_actions_example_uses_real_cli_flags() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = workflow["jobs"]["publish"]["steps"]
    publish = next(s for s in steps if "quote mods publish" in s.get("run", ""))
    assert set(publish["env"]) == {"QUOTE_REGISTRY_URL", "QUOTE_API_KEY", "QUOTE_SIGNING_KEY_PEM"}
    args = shlex.split(publish["run"].replace('"${GITHUB_REF_NAME#v}"', "1.0.0"))[1:]
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0 and "--version" in result.output
    assert workflow[True]["push"]["tags"] == ["v*.*.*"]  # YAML reads the key `on` as True


def test_admin_sets_key_limits_from_the_cli(registry: RunningRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import ADMIN_KEY

    creds = registry.tenant_with_keys("limited")
    monkeypatch.setenv("QUOTE_REGISTRY_URL", registry.url)
    monkeypatch.setenv("QUOTE_API_KEY", ADMIN_KEY)
    prefix = creds["key"].split("_")[1]
    result = CliRunner().invoke(app, ["keys", "limits", prefix, "--requests-per-minute", "60", "--max-concurrent", "2"])
    assert result.exit_code == 0, result.output
    assert '"requests_per_minute": 60' in result.output and '"max_concurrent": 2' in result.output
    monkeypatch.setenv("QUOTE_API_KEY", creds["key"])
    refused = CliRunner().invoke(app, ["keys", "limits", prefix, "--requests-per-minute", "6000"])
    assert refused.exit_code == 1 and refused.output.startswith("error:")
