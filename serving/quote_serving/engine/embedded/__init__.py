"""The embedded engine backend: a transformers model run in-process with our own KV caches.

Modules, one job each: `kv_store` (per-sequence growing K/V buffers and their budget), `sequences`
(token bookkeeping: computed vs pending), `batch` (packing pending tokens into one ragged row),
`attention` (the AttentionInterface hook that reads/writes the caches), `backend` (the port).
"""

from quote_serving.engine.embedded.backend import EmbeddedBackend

__all__ = ["EmbeddedBackend"]
