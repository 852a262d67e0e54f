"""`quote keygen`, `quote tenants|keys|signing-keys|mods …`, `quote registry serve|migrate`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from quote_cli.config import API_KEY, REGISTRY_URL, client, fail, signing_key
from quote_mod_sdk import Mod, keygen
from quote_mod_sdk.serialize import load_bundle_module, load_mod, serialize_directory
from quote_registry.client import RegistryClientError

tenants_app = typer.Typer(help="Tenants (admin keys only).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: shown once, stored hashed.", no_args_is_help=True)
signing_app = typer.Typer(help="Trusted Ed25519 public keys of your tenant.", no_args_is_help=True)
mods_app = typer.Typer(help="Publish and manage mods.", no_args_is_help=True)
registry_app = typer.Typer(help="Run the registry service.", no_args_is_help=True)


def _show(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _run(call: Any) -> Any:
    try:
        return call()
    except RegistryClientError as exc:
        raise fail(exc.message if exc.status else str(exc)) from exc


def keygen_command(
    out: Path = typer.Option(Path("quote-signing-key.pem"), "--out", help="Where to write the private key (0600)"),
) -> None:
    """Create an Ed25519 signing key pair; register the printed public key with `quote signing-keys add`."""
    if out.exists():
        raise fail(f"{out} exists; refusing to overwrite a key")
    key = keygen()
    out.write_text(key.private_pem())
    os.chmod(out, 0o600)
    typer.echo(f"private key: {out}\nkey id:      {key.key_id}\npublic key:  {key.public_b64()}")


@tenants_app.command("create")
def tenants_create(name: str, url: str = REGISTRY_URL, api_key: str = API_KEY) -> None:
    _show(_run(lambda: client(url, api_key).create_tenant(name)))


@tenants_app.command("list")
def tenants_list(url: str = REGISTRY_URL, api_key: str = API_KEY) -> None:
    _show(_run(lambda: client(url, api_key).list_tenants()))


@keys_app.command("create")
def keys_create(
    scope: list[str] = typer.Option(["infer"], "--scope", help="infer, publish, admin or service (repeatable)"),
    name: str = typer.Option("", help="A label for the key"),
    tenant: str = typer.Option(None, help="Admin only: the tenant to create the key for"),
    acts_for: list[str] = typer.Option(
        [], "--acts-for", help="Service keys: a tenant the key may resolve mods for (repeatable; '*' = any)"
    ),
    url: str = REGISTRY_URL,
    api_key: str = API_KEY,
) -> None:
    """Create an API key; it is printed once and never again."""
    _show(
        _run(lambda: client(url, api_key).create_key(scopes=scope, name=name, tenant=tenant, acts_for=acts_for or None))
    )


@keys_app.command("list")
def keys_list(url: str = REGISTRY_URL, api_key: str = API_KEY) -> None:
    _show(_run(lambda: client(url, api_key).list_keys()))


@keys_app.command("revoke")
def keys_revoke(prefix: str, url: str = REGISTRY_URL, api_key: str = API_KEY) -> None:
    _show(_run(lambda: client(url, api_key).revoke_key(prefix)))


@keys_app.command("limits")
def keys_limits(
    prefix: str,
    rpm: int = typer.Option(None, "--requests-per-minute", min=1, help="Requests per minute"),
    tpm: int = typer.Option(None, "--tokens-per-minute", min=1, help="Prompt + completion tokens per minute"),
    concurrent: int = typer.Option(None, "--max-concurrent", min=1, help="Requests in flight at once"),
    url: str = REGISTRY_URL,
    api_key: str = API_KEY,
) -> None:
    """Admin: set a key's limits (unset ones fall back to the gateway's defaults)."""
    limits = {"requests_per_minute": rpm, "tokens_per_minute": tpm, "max_concurrent": concurrent}
    _show(_run(lambda: client(url, api_key).set_key_limits(prefix, **limits)))


@signing_app.command("add")
def signing_add(public_key: str, name: str = typer.Option(""), url: str = REGISTRY_URL, api_key: str = API_KEY) -> None:
    _show(_run(lambda: client(url, api_key).add_signing_key(public_key, name)))


@signing_app.command("list")
def signing_list(url: str = REGISTRY_URL, api_key: str = API_KEY) -> None:
    _show(_run(lambda: client(url, api_key).list_signing_keys()))


@signing_app.command("revoke")
def signing_revoke(key_id: str, url: str = REGISTRY_URL, api_key: str = API_KEY) -> None:
    _show(_run(lambda: client(url, api_key).revoke_signing_key(key_id)))


def build_bundle(path: Path, name: str, entrypoint: str | None) -> dict[str, Any]:
    """A bundle from a .py file or a folder, checked by loading it (in its own namespace)."""
    if path.is_dir():
        if not entrypoint or ":" not in entrypoint:
            raise fail("a folder needs --entrypoint module:attribute")
        bundle = serialize_directory(path, entrypoint=entrypoint, name=name)
    elif path.suffix == ".py" and path.is_file():
        bundle = {
            "language": "python",
            "module": path.stem,
            "entrypoint": entrypoint or "",
            "source": path.read_text(),
            "name": name,
        }
        bundle["entrypoint"] = entrypoint or _only_mod(bundle)
    else:
        raise fail(f"{path} is neither a .py file nor a folder")
    try:
        load_mod(bundle)
    except Exception as exc:
        raise fail(f"{path} does not load: {type(exc).__name__}: {exc}") from exc
    return bundle


def _only_mod(bundle: dict[str, Any]) -> str:
    try:
        namespace = vars(load_bundle_module({**bundle, "entrypoint": "x"}))
    except Exception as exc:
        raise fail(f"the file does not load: {type(exc).__name__}: {exc}") from exc
    mods = [k for k, v in namespace.items() if isinstance(v, Mod)]
    if len(mods) != 1:
        raise fail(f"found {len(mods)} mods in the file ({', '.join(mods) or 'none'}); pass --entrypoint NAME")
    return mods[0]


@mods_app.command("publish")
def mods_publish(
    path: Path = typer.Argument(..., help="The mod's .py file, or a folder for a multi-file bundle"),
    name: str = typer.Option(..., help="Mod name (model suffix: <base>/<name>)"),
    version: str = typer.Option(..., help="Semantic version, e.g. 1.2.0"),
    entrypoint: str = typer.Option(None, help="The mod's attribute (file) or module:attribute (folder)"),
    visibility: str = typer.Option(None, help="private (default) or public"),
    key_file: Path = typer.Option(None, "--key-file", help="Private signing key (PEM)"),
    unsigned: bool = typer.Option(False, help="Publish without a signature (development registries only)"),
    url: str = REGISTRY_URL,
    api_key: str = API_KEY,
) -> None:
    """Sign locally and upload. Identical content again is a no-op; other content for a version is refused."""
    bundle = build_bundle(path, name, entrypoint)
    key = None if unsigned else signing_key(key_file)
    info, created = _run(lambda: client(url, api_key).publish(name, version, bundle, key=key, visibility=visibility))
    verb = "published" if created else "already published (identical content)"
    typer.echo(f"{verb}: {name} {version} {info['digest']}")


@mods_app.command("list")
def mods_list(
    public: bool = typer.Option(False, help="Include other tenants' public mods"),
    url: str = REGISTRY_URL,
    api_key: str = API_KEY,
) -> None:
    _show(_run(lambda: client(url, api_key).list_mods(include_public=public)))


@mods_app.command("show")
def mods_show(name: str, url: str = REGISTRY_URL, api_key: str = API_KEY) -> None:
    _show(_run(lambda: client(url, api_key).show(name)))


@mods_app.command("yank")
def mods_yank(
    name: str,
    version: str,
    reason: str = typer.Option(""),
    undo: bool = typer.Option(False, help="Un-yank"),
    url: str = REGISTRY_URL,
    api_key: str = API_KEY,
) -> None:
    registry = client(url, api_key)
    _show(_run(lambda: registry.unyank(name, version) if undo else registry.yank(name, version, reason)))


@mods_app.command("alias")
def mods_alias(name: str, alias: str, version: str, url: str = REGISTRY_URL, api_key: str = API_KEY) -> None:
    _show(_run(lambda: client(url, api_key).alias(name, alias, version)))


@registry_app.command("migrate")
def registry_migrate(database_url: str = typer.Option(None, envvar="QUOTE_REGISTRY_DATABASE_URL")) -> None:
    """Bring the registry schema to the latest revision (Alembic)."""
    from quote_registry.migrate import upgrade
    from quote_registry.settings import RegistrySettings

    upgrade(database_url or RegistrySettings().database_url)
    typer.echo("registry schema is at head")


@registry_app.command("serve")
def registry_serve(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8100),
    migrate: bool = typer.Option(True, help="Run migrations first"),
) -> None:
    """Run the registry API (settings from QUOTE_REGISTRY_* variables)."""
    import uvicorn

    from quote_registry.api.app import create_registry_app
    from quote_registry.migrate import upgrade
    from quote_registry.settings import RegistrySettings

    settings = RegistrySettings()
    if migrate:
        upgrade(settings.database_url)
    uvicorn.run(create_registry_app(settings), host=host, port=port)
