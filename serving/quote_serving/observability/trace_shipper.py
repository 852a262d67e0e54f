"""Ship finished traces to the trace store (the registry) in batches, never blocking the engine.

    engine thread ── TraceStore.put ──► sink = TraceShipper.offer ──► bounded queue (full: dropped += 1)
    shipper thread ── up to `batch` traces ──► POST {registry}/v1/traces/ingest (service key)
                                             └─ store down / refused: the batch is dropped and counted

`offer` only does a `put_nowait`; turning a trace into JSON (token texts) happens on the shipper
thread. A store outage costs traces, never requests: shipping resumes with the next batch.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import httpx

from quote_serving.runtime.traces import StoredTrace, TraceStore, trace_to_json
from quote_serving.settings import ServeSettings

__all__ = ["TraceShipper", "ship_traces_from"]

logger = logging.getLogger(__name__)


class TraceShipper:
    """A bounded queue and one daemon thread posting batches; counters say what happened to each trace."""

    def __init__(
        self,
        registry_url: str,
        api_key: str,
        tokenizer: Any,
        *,
        replica: str = "",
        capacity: int = 2000,
        batch: int = 100,
        timeout_s: float = 5.0,
    ) -> None:
        self._queue: queue.Queue[StoredTrace | None] = queue.Queue(maxsize=capacity)
        self._tokenizer, self._replica, self._batch = tokenizer, replica[:128], batch
        self._client = httpx.Client(
            base_url=registry_url.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout_s
        )
        self.shipped = self.dropped = self.skipped = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="quote-trace-shipper", daemon=True)
        self._thread.start()

    def offer(self, stored: StoredTrace) -> None:
        """Called by the engine for each finished trace: enqueue or count it as dropped, at once."""
        if stored.tenant is None:  # no gateway-signed tenant: nobody could read it back
            with self._lock:
                self.skipped += 1
            return
        with self._lock:
            self._pending += 1
        try:
            self._queue.put_nowait(stored)
        except queue.Full:
            self._settle(dropped=1)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every offered trace is shipped or dropped (tests, shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout_s)

    def close(self) -> None:
        self.flush()
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._client.close()

    def _settle(self, *, shipped: int = 0, dropped: int = 0) -> None:
        with self._idle:
            self.shipped += shipped
            self.dropped += dropped
            self._pending -= shipped + dropped
            self._idle.notify_all()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._ship(batch)
                    return
                batch.append(item)
            self._ship(batch)

    def _ship(self, batch: list[StoredTrace]) -> None:
        try:
            records = [self._record(s) for s in batch]
            reply = self._client.post("/v1/traces/ingest", json={"records": records})
            reply.raise_for_status()
        except Exception as exc:  # the store is optional to serving: count, log once per batch, carry on
            logger.warning("trace store unavailable, dropped %d traces: %s", len(batch), exc)
            self._settle(dropped=len(batch))
            return
        self._settle(shipped=len(batch))

    def _record(self, stored: StoredTrace) -> dict[str, Any]:
        trace = stored.trace
        return {
            "request_id": trace.request_id[:128],
            "tenant": stored.tenant,
            "model": stored.model[:256],
            "mod": (trace.mod or "")[:160],
            "finish_reason": (trace.finish_reason or "")[:32],
            "error": bool(trace.error),
            "erasures": sum(1 for t in trace.tokens if t.erased),
            "replica": self._replica,
            "created": stored.created,
            "body": trace_to_json(stored, self._tokenizer),
        }


def ship_traces_from(store: TraceStore, settings: ServeSettings, tokenizer: Any) -> TraceShipper | None:
    """Attach a shipper to `store` when `trace_store_url` is set (key: its own, else the registry's)."""
    if settings.trace_store_url is None:
        return None
    key = settings.trace_store_api_key or settings.registry_api_key
    if key is None:
        raise ValueError(
            "QUOTE_TRACE_STORE_URL needs a service key: QUOTE_TRACE_STORE_API_KEY or QUOTE_REGISTRY_API_KEY"
        )
    shipper = TraceShipper(settings.trace_store_url, key.get_secret_value(), tokenizer, replica=settings.replica_name)
    store.sink = shipper.offer
    logger.info("shipping traces to the trace store at %s", settings.trace_store_url)
    return shipper
