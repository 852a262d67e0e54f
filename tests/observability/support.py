"""Test helpers: the mods the observability tests run, an in-process server, an OTLP receiver."""

from __future__ import annotations

import gzip
import json
import textwrap
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.ports import free_port

MODEL = "quote-tiny"
CALLER_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"

MODS = {
    # Erases its last 3 tokens every 5th step and reinjects " ok": interventions, forced, erased.
    "rewriter": """
        from quote_mod_sdk import mod, Added

        @mod(max_backtrack=4)
        def rewriter(event, actions, tokenizer):
            if isinstance(event, Added) and not event.forced and event.step % 5 == 0:
                return actions.backtrack(3, tokenizer.encode(" ok", add_special_tokens=False))
        """,
    # Raises at step 4: a mod error.
    "failer": """
        from quote_mod_sdk import mod, ForwardPass

        @mod(max_backtrack=0)
        def failer(event, actions):
            if isinstance(event, ForwardPass) and event.step == 4:
                raise RuntimeError("boom at step 4")
        """,
}


def mod_payload(name: str) -> dict[str, str]:
    return {
        "language": "python",
        "module": name,
        "entrypoint": name,
        "source": textwrap.dedent(MODS[name]),
        "name": name,
    }


def register_mods(base_url: str) -> None:
    for name in MODS:
        response = httpx.post(f"{base_url}/v1/mods", json=mod_payload(name), timeout=30)
        assert response.status_code in (200, 201), response.text


def chat_body(model: str, content: str = "Hi", **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 24,
        "temperature": 0,
        **extra,
    }


def sse_request_id(client: httpx.Client, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    """Stream a chat completion to its end; returns the request id the chunks carried."""
    request_id = ""
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}, headers=headers) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                request_id = json.loads(line[6:]).get("id", request_id)
    return request_id


def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"condition not met within {timeout}s"
            return value
        time.sleep(interval)


class TenantFromHeader:
    """Stands in for the gateway: `X-Test-Tenant` becomes `request.state.tenant`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            tenant = dict(scope["headers"]).get(b"x-test-tenant")
            if tenant:
                scope.setdefault("state", {})["tenant"] = tenant.decode()
        await self.app(scope, receive, send)


class InProcessServer:
    """uvicorn serving an app on 127.0.0.1 in a thread (lifespan included)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="test-uvicorn", daemon=True)

    def start(self) -> InProcessServer:
        self._thread.start()
        wait_for(lambda: self._server.started, timeout=60, interval=0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


class OTLPReceiver:
    """A minimal OTLP/HTTP traces endpoint: decodes each protobuf ExportTraceServiceRequest."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.content_types: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                with receiver._lock:
                    receiver.requests.append(message)
                    receiver.content_types.append(self.headers.get("Content-Type", ""))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()

    def spans(self) -> list[tuple[Any, Any]]:
        """Every received span with its resource, in arrival order."""
        with self._lock:
            return [
                (rs.resource, span)
                for request in self.requests
                for rs in request.resource_spans
                for ss in rs.scope_spans
                for span in ss.spans
            ]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def attribute(item: Any, key: str) -> Any:
    """The Python value of a protobuf attribute (span, event or resource)."""
    for kv in item.attributes:
        if kv.key == key:
            value = kv.value
            kind = value.WhichOneof("value")
            if kind == "array_value":
                return [getattr(v, v.WhichOneof("value")) for v in value.array_value.values]
            return getattr(value, kind)
    return None
