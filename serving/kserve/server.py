"""The container entrypoint: KServe's `ModelServer` serving Quote's OpenAI app (raw deployment).

    python -m quote_serving.kserve --model_name quote --model Qwen/Qwen2.5-0.5B-Instruct
      ─► QuoteKServeModel.load()                    model + ModRuntime + mod store (embedded)
      ─► create_app(ctx) mounted at /openai          /openai/v1/chat/completions, /openai/v1/models, ...
      ─► kserve.ModelServer(...).start([model])      /v2/health/*, /v1/models/<name>, /metrics, signals

The OpenAI app lives under KServe's OpenAI prefix (`KSERVE_OPENAI_ROUTE_PREFIX`, "/openai"), where
KServe serves OpenAI routes itself; unprefixed, `/v1/models` would collide with KServe's V1
protocol. KServe's own OpenAI classes are not used: they are built on vLLM's protocol types (and
vLLM), while this app carries Quote's semantics (`<model>/<mod>` names, streaming holdback, traces).
Everything else of KServe's server is used as is.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from kserve import ModelServer
from kserve import model_server as kserve_model_server
from quote_serving.kserve.model import QuoteKServeModel
from quote_serving.settings import ServeSettings

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """KServe's model-server arguments (`--model_name`, `--http_port`, ...) plus Quote's."""
    parser = argparse.ArgumentParser(
        prog="python -m quote_serving.kserve", parents=[kserve_model_server.parser], description=__doc__
    )
    parser.add_argument("--model", default=None, help="Hugging Face id or local path; omit for the offline tiny model")
    parser.add_argument("--served_model_name", default=None, help="Name clients send as `model` (default: model id)")
    parser.add_argument("--max_batch", type=int, default=32, help="Requests sharing one batched forward pass")
    parser.add_argument(
        "--openai_route_prefix",
        default=os.environ.get("KSERVE_OPENAI_ROUTE_PREFIX", "/openai"),
        help="Where the OpenAI API is mounted (not empty: /v1/models is KServe's V1 protocol)",
    )
    parser.add_argument("--grace_period", type=int, default=30, help="Seconds running requests get on SIGTERM")
    parser.set_defaults(enable_grpc=False)  # the OpenAI API is HTTP; KServe's V2 gRPC has nothing to serve
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    prefix = "/" + args.openai_route_prefix.strip("/")
    if prefix == "/":
        raise SystemExit("--openai_route_prefix must not be empty: /v1/models is KServe's V1 protocol route")
    if args.workers != 1:
        raise SystemExit("--workers must be 1: the engine and its KV caches live in this process")
    settings = ServeSettings(model=args.model, served_model_name=args.served_model_name, max_batch=args.max_batch)
    model = QuoteKServeModel(args.model_name, settings)
    model.load()
    kserve_model_server.app.mount(prefix, model.openai_app())
    logger.info("OpenAI API of %s at %s/v1", settings.served_model_name or args.model or "quote-tiny", prefix)
    server = ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        enable_grpc=args.enable_grpc,
        workers=1,
        grace_period=args.grace_period,
    )
    server.start([model])
