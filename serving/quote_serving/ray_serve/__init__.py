"""Scale-out serving on Ray Serve: one application per base model, autoscaled engine replicas.

Modules, one job each: `args` (the builder's validated arguments), `app` (`app_builder`, the three
deployments wired), `ingress` (the OpenAI app on remote engines), `remote_runtime` (the ingress's
`ModRuntime` stand-in), `engine` (model + ModRuntime per replica), `wire` (what crosses the hop),
`mod_source` / `mod_store` / `mod_cache` / `catalog` (mod bundles: where from, shared, loaded once
per digest, resolved for the routes), `replica_header` (`x-quote-replica`), `model_info`
(tokenizer and config without weights), `launcher` (`quote serve --ray`).
"""

from quote_serving.ray_serve.app import app_builder, build_app
from quote_serving.ray_serve.args import QuoteAppArgs

__all__ = ["QuoteAppArgs", "app_builder", "build_app"]
