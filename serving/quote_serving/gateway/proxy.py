"""Forwarding an admitted request to a replica, and its answer back as it comes.

    Admission (scope state) ─► pick the least loaded ready replica ─► POST <replica>/v1/<path> (tenant signed)
        connect refused / connect timed out, or 503 before any byte ─► next replica (up to `max_attempts`):
            the request provably never ran there, so trying elsewhere cannot run it twice
        connection dropped after the request was sent, any other failure ─► a clean 502, never a retry:
            a request that kills a replica must not get the chance to kill the next one
        every route replica failing its /readyz check ─► 503 without forwarding (health.py)
    answer ─► status and a few headers ─► each chunk sent on as it arrives (nothing buffered here)
    client leaves ─► the upstream connection is closed, so the replica cancels the generation

The client's own Authorization header never leaves the gateway: replicas learn the tenant from
the signed `x-quote-tenant` header alone.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from starlette.types import Receive, Scope, Send

from quote_serving.api.errors import QuoteAPIError, UpstreamError
from quote_serving.gateway.errors import ServiceUnavailableError, send_error
from quote_serving.gateway.inference import ADMISSION, Admission
from quote_serving.gateway.replicas import Replica, ReplicaSet
from quote_serving.gateway.trust import SIGNATURE_HEADER, TENANT_HEADER, sign_request

__all__ = ["ProxyApp"]

logger = logging.getLogger(__name__)

_FORWARD = {b"accept", b"content-type", b"traceparent", b"tracestate", b"user-agent", b"x-request-id"}
_RELAY = {b"content-type", b"content-length", b"cache-control", b"retry-after", b"x-quote-replica", b"x-request-id"}
_RETRY_STATUSES = (503,)  # "not ready": the replica refused the request before running it
_STREAM_BROKEN = (
    b'data: {"error":{"message":"The model replica failed mid-stream; retry the request.",'
    b'"type":"server_error","param":null,"code":"upstream_failed"}}\n\n'
)
# Failures before a connection existed: the replica never saw the request, so it is safe elsewhere.
_RETRYABLE = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


class ProxyApp:
    """ASGI app behind GatewayEdge: needs the Admission the edge put in scope["state"]."""

    def __init__(
        self,
        replicas: ReplicaSet,
        *,
        secret: bytes | None,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 60.0,
        request_timeout_s: float = 300.0,
        max_attempts: int = 3,
        outlier_5xx: int = 3,
    ) -> None:
        self.replicas, self.secret, self.max_attempts = replicas, secret, max_attempts
        self.outlier_5xx = outlier_5xx
        self._whole_request = aiohttp.ClientTimeout(
            total=request_timeout_s, connect=connect_timeout_s, sock_connect=connect_timeout_s, sock_read=read_timeout_s
        )
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout_s, sock_connect=connect_timeout_s, sock_read=read_timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # Replicas (uvicorn) drop idle connections after 5 s: ours go first, so a request never
        # lands on a connection the replica is closing.
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=4.0)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, auto_decompress=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        admission: Admission = scope["state"][ADMISSION]
        # The relay runs in this task; a watcher cancels it when the client leaves (and only then is
        # the cancellation swallowed: a server shutting down still cancels us as usual).
        relay = asyncio.current_task()
        assert relay is not None
        relaying = True

        def client_left(done: asyncio.Future[None]) -> None:
            if relaying and not done.cancelled():
                relay.cancel()

        watcher = asyncio.ensure_future(_client_gone(receive))
        watcher.add_done_callback(client_left)
        try:
            await self._relay(scope, admission, send)
        except asyncio.CancelledError:
            if not watcher.done() or watcher.cancelled():
                raise
            if hasattr(relay, "uncancel"):  # Python 3.11+: this cancellation is handled
                relay.uncancel()
        finally:
            relaying = False
            watcher.cancel()

    async def _relay(self, scope: Scope, admission: Admission, send: Send) -> None:
        try:
            response, replica = await self._open(scope, admission)
        except QuoteAPIError as exc:
            return await send_error(send, exc)
        try:
            await self._stream(response, send)
        finally:
            replica.outstanding -= 1
            response.close()  # returns nothing to the pool half-read; a finished response is already released

    async def _stream(self, response: aiohttp.ClientResponse, send: Send) -> None:
        headers = [(k.lower(), v) for k, v in response.raw_headers if k.lower() in _RELAY]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        ending = b""
        try:
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # Too late for a status. A stream ends with an error event (OpenAI clients raise it);
            # other bodies end short, which clients detect.
            logger.warning("replica %s failed mid-response: %s", response.url.origin(), type(exc).__name__)
            if response.content_type == "text/event-stream":
                ending = _STREAM_BROKEN
        await send({"type": "http.response.body", "body": ending, "more_body": False})

    async def _open(self, scope: Scope, admission: Admission) -> tuple[aiohttp.ClientResponse, Replica]:
        assert self._session is not None, "ProxyApp.start() was not awaited"
        urls, failure = self.replicas.ready(admission.decision.replicas), "no replica"
        if not urls:
            raise ServiceUnavailableError(
                f"The model '{admission.decision.ref.base}' has no ready replicas right now; retry shortly.",
                code="model_not_ready",
            )
        timeout = self._timeout if admission.stream else self._whole_request
        tried: list[str] = []
        tail = scope["path"][len("/v1") :] + (f"?{scope['query_string'].decode()}" if scope["query_string"] else "")
        for attempt in range(1, self.max_attempts + 1):
            replica = self.replicas.pick(urls, tried)
            tried.append(replica.url)
            replica.outstanding += 1
            headers = self._headers(scope, admission, tail)
            try:
                response = await self._session.post(
                    replica.url + tail, data=admission.body, headers=headers, timeout=timeout
                )
            except _RETRYABLE as exc:
                replica.outstanding -= 1
                self.replicas.eject(replica)
                failure = f"{type(exc).__name__} from {replica.url}"
                logger.warning("model %s: %s (attempt %d)", admission.decision.ref.base, failure, attempt)
                continue
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                # The replica had the request (dropped, reset, timed out): it may have run. Never retried.
                replica.outstanding -= 1
                self.replicas.failed(replica, outlier_after=self.outlier_5xx)
                raise _upstream_failed(admission, f"{type(exc).__name__} from {replica.url}") from exc
            except BaseException:
                replica.outstanding -= 1
                raise
            if response.status >= 500:
                self.replicas.failed(replica, outlier_after=self.outlier_5xx)
            else:
                self.replicas.succeeded(replica)
            if response.status in _RETRY_STATUSES and attempt < self.max_attempts:
                replica.outstanding -= 1
                response.release()
                failure = f"status {response.status} from {replica.url}"
                logger.warning("model %s: %s (attempt %d)", admission.decision.ref.base, failure, attempt)
                continue
            return response, replica
        raise _upstream_failed(admission, failure)

    def _headers(self, scope: Scope, admission: Admission, tail: str) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept-encoding": "identity"}
        for name, value in scope["headers"]:
            if name in _FORWARD:
                headers[name.decode()] = value.decode("latin-1")
        if self.secret is not None:
            # Bound to this one request (method, path, body; a fresh nonce each attempt): see trust.py.
            target = "/v1" + tail
            headers[TENANT_HEADER] = admission.tenant
            headers[SIGNATURE_HEADER] = sign_request(self.secret, admission.tenant, "POST", target, admission.body)
        return headers


def _upstream_failed(admission: Admission, failure: str) -> UpstreamError:
    logger.error("model %s: no replica answered (%s)", admission.decision.ref.base, failure)
    return UpstreamError(
        f"No replica of '{admission.decision.ref.base}' could take the request; retry shortly.",
        code="upstream_unavailable",
    )


async def _client_gone(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
