"""`python -m quote_operator`: run the operator for every namespace (the chart's container command)."""

from __future__ import annotations

import kopf

from . import handlers  # noqa: F401  (registers the handlers)
from .settings import OperatorSettings


def main() -> None:
    settings = OperatorSettings()
    kopf.configure(verbose=settings.verbose)
    kopf.run(clusterwide=True, standalone=True, liveness_endpoint=settings.liveness_endpoint)


if __name__ == "__main__":
    main()
