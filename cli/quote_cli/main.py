"""Entry point of the `quote` command line (typer): one sub-command per job."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(help="Quote: token-level runtime interventions in LLM generation.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Quote command line."""


@app.command()
def serve(
    model: str = typer.Option(
        None, help="smollm2 (default: SmolLM2-135M-Instruct, offline), tiny (random weights), an HF id or a path"
    ),
    dtype: str = typer.Option(
        None, help="float32 (CPU default), bfloat16, float16, auto, or int8 (CPU: ~2x faster, batch-invariant)"
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on"),
    port: int = typer.Option(8000, help="TCP port"),
    served_model_name: str = typer.Option(None, help="Name clients send as `model` (default: the model id)"),
    max_batch: int = typer.Option(None, min=1, help="Requests sharing one forward pass (default 32)"),
    registry_url: str = typer.Option(None, envvar="QUOTE_REGISTRY_URL", help="Resolve mods from this registry"),
    registry_api_key: str = typer.Option(None, envvar="QUOTE_REGISTRY_API_KEY", help="API key for the registry"),
    dev_mode: bool = typer.Option(
        None, "--dev-mode/--no-dev-mode", help="Accept unsigned mods (default: only without a registry)"
    ),
    mod_isolation: str = typer.Option(
        None,
        help="process (confined per-tenant workers), inline (engine thread: one trusted tenant) or auto (default:"
        " inline in dev mode, process otherwise); QUOTE_MOD_ISOLATION",
    ),
    log_level: str = typer.Option("info", help="debug, info, warning or error"),
    ray: bool = typer.Option(
        False, "--ray", help="Run on Ray Serve instead (local Ray, or RAY_ADDRESS): autoscaled engine replicas"
    ),
    gateway: bool = typer.Option(
        False,
        "--gateway",
        help="Enforce API keys, tenancy, limits and usage in-process (keys checked with --registry-url)",
    ),
) -> None:
    """Run the embedded server: OpenAI API + engine + mod store in one process (no Ray, no Kubernetes).

    With --ray: the same API as a Ray Serve application (replica settings: QUOTE_RAY_ARGS JSON).
    """
    import os

    import uvicorn

    from quote_serving.embedded import build_embedded_app
    from quote_serving.models.catalog import DEFAULT_SERVE_MODEL
    from quote_serving.models.loader import ModelLoadError
    from quote_serving.settings import ServeSettings

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if model is None and not os.environ.get("QUOTE_MODEL"):
        model = DEFAULT_SERVE_MODEL
    given: dict[str, Any] = {
        "model": model,
        "dtype": dtype,
        "host": host,
        "port": port,
        "served_model_name": served_model_name,
        "max_batch": max_batch,
        "registry_url": registry_url,
        "registry_api_key": registry_api_key,
        "dev_mode": dev_mode,
        "mod_isolation": mod_isolation,
    }
    if ray:
        from quote_serving.ray_serve.launcher import serve_on_ray

        serve_on_ray({k: v for k, v in given.items() if k not in ("host", "port")}, host=host, port=port)
        return
    settings = ServeSettings(**{k: v for k, v in given.items() if v is not None})  # unset flags leave QUOTE_* env
    try:
        application = build_embedded_app(settings)
    except ModelLoadError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    if gateway:
        _install_gateway(application, settings)
    typer.echo(f"quote serve: model {application.state.quote.model_name!r} on http://{host}:{port}/v1")
    uvicorn.run(application, host=host, port=port, log_level=log_level)


def _install_gateway(application: Any, settings: Any) -> None:
    from quote_serving.gateway import GatewayConfigError, GatewaySettings, install_in_process_gateway

    try:
        given = {"registry_url": settings.registry_url, "registry_api_key": settings.registry_api_key}
        gateway_settings = GatewaySettings(**{k: v for k, v in given.items() if v is not None})
        install_in_process_gateway(application, application.state.quote.model_name, gateway_settings)
    except GatewayConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc


@app.command("gateway")
def gateway_command(
    routes: Path = typer.Option(None, "--routes", help="Route table: a YAML or JSON file"),
    routes_dir: Path = typer.Option(None, "--routes-dir", help="Or: the operator's `quote-routes` ConfigMap, mounted"),
    registry_url: str = typer.Option(None, envvar="QUOTE_REGISTRY_URL", help="Registry that checks API keys"),
    registry_api_key: str = typer.Option(
        None, envvar="QUOTE_REGISTRY_API_KEY", help="The gateway's `service` key (never logged)"
    ),
    redis_url: str = typer.Option(None, envvar="QUOTE_GATEWAY_REDIS_URL", help="Share limits across gateways"),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on"),
    port: int = typer.Option(8080, help="TCP port"),
    log_level: str = typer.Option("info", help="debug, info, warning or error"),
) -> None:
    """Run the multi-tenant gateway in front of serving replicas (other settings: QUOTE_GATEWAY_* env)."""
    import uvicorn
    from pydantic import ValidationError

    from quote_serving.gateway import GatewayConfigError, GatewaySettings, RoutesError, create_gateway_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    given: dict[str, Any] = {"routes": routes, "routes_dir": routes_dir, "registry_url": registry_url}
    given |= {"registry_api_key": registry_api_key, "redis_url": redis_url, "host": host, "port": port}
    try:
        application = create_gateway_app(GatewaySettings(**{k: v for k, v in given.items() if v is not None}))
    except (GatewayConfigError, RoutesError, ValidationError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"quote gateway: {len(application.gateway.table)} models on http://{host}:{port}/v1")
    uvicorn.run(application, host=host, port=port, log_level=log_level)


def _register_subcommands() -> None:
    from quote_cli import registry_cmds

    app.command("keygen")(registry_cmds.keygen_command)
    app.add_typer(registry_cmds.tenants_app, name="tenants")
    app.add_typer(registry_cmds.keys_app, name="keys")
    app.add_typer(registry_cmds.signing_app, name="signing-keys")
    app.add_typer(registry_cmds.mods_app, name="mods")
    app.add_typer(registry_cmds.registry_app, name="registry")
    from quote_cli.experiment_cmds import experiment_app

    app.add_typer(experiment_app, name="experiment")


_register_subcommands()
