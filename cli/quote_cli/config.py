"""Where CLI commands find the registry, the API key and the signing key (flags or QUOTE_* env)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from quote_mod_sdk.signing import KeyPair, load_private_key
from quote_registry.client import RegistryClient

REGISTRY_URL = typer.Option(None, "--registry-url", envvar="QUOTE_REGISTRY_URL", help="Registry base URL")
API_KEY = typer.Option(None, "--api-key", envvar="QUOTE_API_KEY", help="Registry API key (never logged)")


def fail(message: str) -> typer.Exit:
    """Print a one-line error to stderr and return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def client(url: str | None, api_key: str | None) -> RegistryClient:
    if not url:
        raise fail("no registry: pass --registry-url or set QUOTE_REGISTRY_URL")
    if not api_key:
        raise fail("no API key: pass --api-key or set QUOTE_API_KEY")
    return RegistryClient(url, api_key)


def signing_key(path: Path | None) -> KeyPair:
    """The private key from --key-file, QUOTE_SIGNING_KEY (a path) or QUOTE_SIGNING_KEY_PEM (CI secrets)."""
    pem = os.environ.get("QUOTE_SIGNING_KEY_PEM")
    path = path or (Path(os.environ["QUOTE_SIGNING_KEY"]) if os.environ.get("QUOTE_SIGNING_KEY") else None)
    if path is not None:
        try:
            pem = path.read_text()
        except OSError as exc:
            raise fail(f"cannot read signing key {path}: {exc.strerror}") from exc
    if not pem:
        raise fail(
            "no signing key: pass --key-file, set QUOTE_SIGNING_KEY(_PEM), or use --unsigned (dev registries only)"
        )
    try:
        return load_private_key(pem)
    except Exception as exc:
        raise fail(str(exc)) from exc
