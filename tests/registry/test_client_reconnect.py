"""A registry that drops a connection (a keep-alive closed as it was reused, a reset): reads retry once,
writes never (they may have landed). Found by bench/soak.py: a burst of requests got a 502
`registry_unavailable` from a replica when the registry reset one pooled connection.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from quote_registry.client import RegistryClient, RegistryClientError

OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n{"data": []}'


class Flaky:
    """A real TCP server on 127.0.0.1: resets the first `drops` connections after reading a request."""

    def __init__(self, drops: int) -> None:
        self.drops, self.requests = drops, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                if not conn.recv(65536):
                    continue
                self.requests += 1
                if self.drops > 0:
                    self.drops -= 1
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
                    continue
                conn.sendall(OK)


@pytest.fixture
def flaky() -> Iterator[Flaky]:
    server = Flaky(drops=1)
    yield server
    server.sock.close()


def test_a_read_is_retried_once_on_a_fresh_connection(flaky: Flaky) -> None:
    with RegistryClient(flaky.url, "qk_x") as client:
        assert client.list_tenants() == []
    assert flaky.requests == 2


def test_a_write_is_never_resent(flaky: Flaky) -> None:
    with RegistryClient(flaky.url, "qk_x") as client, pytest.raises(RegistryClientError) as raised:
        client.create_tenant("acme")
    assert raised.value.status == 0 and flaky.requests == 1


def test_a_registry_that_keeps_dropping_fails_cleanly_after_one_retry() -> None:
    server = Flaky(drops=5)
    try:
        with RegistryClient(server.url, "qk_x") as client, pytest.raises(RegistryClientError):
            client.list_tenants()
        assert server.requests == 2
    finally:
        server.sock.close()
