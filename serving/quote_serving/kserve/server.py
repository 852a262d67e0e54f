"""The container entrypoint: KServe's `ModelServer` serving Quote's OpenAI app (raw deployment).

    python -m quote_serving.kserve --model_name NAME  (model: --model or QUOTE_MODEL; name: QUOTE_SERVED_MODEL_NAME)
      ─► QuoteKServeModel.load()                   model + ModRuntime + mod source (as `quote serve`)
      ─► install_openai_app(kserve app, prefix)     /v1/chat/completions, /v1/models, ... (routing.py)
      ─► kserve.ModelServer(...).start([model])     /v2/health/*, /, signals, graceful shutdown

KServe's own OpenAI classes are not used: they are built on vLLM's protocol types (and need vLLM),
while this app carries Quote's semantics (`<model>/<mod>` names, streaming holdback, traces).
A storage URI (`storageUri`, which KServe downloads to /mnt/models) is served from `--model_dir`.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from kserve import ModelServer
from kserve import model_server as kserve_model_server

from quote_serving.kserve.model import QuoteKServeModel
from quote_serving.kserve.routing import install_openai_app
from quote_serving.settings import ServeSettings

__all__ = ["build_parser", "main", "serve_settings"]

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """KServe's model-server arguments (`--model_name`, `--http_port`, ...) plus Quote's."""
    parser = argparse.ArgumentParser(
        prog="python -m quote_serving.kserve", parents=[kserve_model_server.parser], description=__doc__
    )
    parser.add_argument("--model", default=None, help="Hugging Face id, local path or URI (default: QUOTE_MODEL)")
    parser.add_argument("--model_dir", default="/mnt/models", help="Where KServe put a `storageUri` model")
    parser.add_argument(
        "--served_model_name", default=None, help="Name clients send (default: QUOTE_SERVED_MODEL_NAME)"
    )
    parser.add_argument("--max_batch", type=int, default=None, help="Requests sharing one forward pass (default 32)")
    parser.add_argument(
        "--openai_route_prefix",
        default=os.environ.get("KSERVE_OPENAI_ROUTE_PREFIX", ""),
        help='Where the OpenAI API lives: "" (the root, /v1/...: what the gateway calls) or e.g. /openai',
    )
    parser.add_argument("--grace_period", type=int, default=30, help="Seconds running requests get on SIGTERM")
    parser.set_defaults(enable_grpc=False)  # the OpenAI API is HTTP; KServe's V2 gRPC has nothing to serve
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.workers != 1:
        raise SystemExit("--workers must be 1: the engine and its KV caches live in this process")
    model = QuoteKServeModel(args.model_name, serve_settings(args))
    model.load()
    install_openai_app(kserve_model_server.app, model.openai_app(), args.openai_route_prefix)
    logger.info("OpenAI API at %s/v1", "/" + args.openai_route_prefix.strip("/") if args.openai_route_prefix else "")
    server = ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        enable_grpc=args.enable_grpc,
        workers=1,
        grace_period=args.grace_period,
    )
    server.start([model])


def serve_settings(args: argparse.Namespace) -> ServeSettings:
    """Flags override QUOTE_* variables (the operator sets QUOTE_MODEL, QUOTE_SERVED_MODEL_NAME, ...)."""
    given = {"model": args.model, "served_model_name": args.served_model_name, "max_batch": args.max_batch}
    settings = ServeSettings(**{k: v for k, v in given.items() if v is not None})
    model = settings.model or None  # QUOTE_MODEL="" means the offline tiny model, as no --model does
    if model and "://" in model:  # a storage URI: KServe's storage initializer put it in model_dir
        model = args.model_dir
    return settings.model_copy(update={"model": model})
