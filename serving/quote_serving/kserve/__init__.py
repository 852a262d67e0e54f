"""The KServe runtime path: the same OpenAI app as `quote serve`, under KServe's `ModelServer`.

Modules: `model` (`QuoteKServeModel`: KServe's model lifecycle around the embedded engine),
`routing` (the OpenAI app inside KServe's app: at the root or under a prefix), `server`
(arguments, settings from flags and QUOTE_* variables, starting KServe's server),
`__main__` (`python -m quote_serving.kserve`, the container entrypoint a `ServingRuntime` runs).
"""

from quote_serving.kserve.model import QuoteKServeModel
from quote_serving.kserve.server import build_parser, main

__all__ = ["QuoteKServeModel", "build_parser", "main"]
