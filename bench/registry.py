"""Registry speed on PostgreSQL: publish throughput, resolve latency cold (database) and cached.

Run: .venv/bin/python bench/registry.py   (starts its own PostgreSQL and registry on 127.0.0.1)

  "database" resolve: GET /v1/mods/{name}/resolve over HTTP, every call hitting PostgreSQL;
  "cached" resolve:   serving's RegistryModSource, the path requests take (answers cached 2 s,
                      loaded mods cached by digest).
  targets: cached resolve p99 ≤ 2 ms, PostgreSQL resolve p99 ≤ 20 ms. Prints, asserts nothing.
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import uvicorn

from quote_mod_sdk import keygen
from quote_registry.api.app import create_registry_app
from quote_registry.client import RegistryClient
from quote_registry.devdb import create_database, postgres_cluster
from quote_registry.migrate import upgrade
from quote_registry.settings import RegistrySettings
from quote_serving.mods.registry_source import RegistryModSource

ADMIN = "qk_benchadmin_" + "b" * 40
SOURCE = "from quote_mod_sdk import mod\n\n@mod\ndef m(event, actions):\n    return None\n"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def serve(url: str) -> tuple[str, uvicorn.Server]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = RegistrySettings(database_url=url, bootstrap_admin_key=ADMIN)
    server = uvicorn.Server(uvicorn.Config(create_registry_app(settings), port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def main() -> None:
    with postgres_cluster() as cluster:
        url = create_database(cluster)
        upgrade(url)
        base, server = serve(url)
        admin = RegistryClient(base, ADMIN)
        admin.create_tenant("bench")
        key_info = admin.create_key(tenant="bench", scopes=["infer", "publish"])
        key = keygen()
        client = RegistryClient(base, key_info["key"])
        client.add_signing_key(key.public_b64())

        n = 200
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda i: RegistryClient(base, key_info["key"]).publish(
                        f"mod{i % 20}",
                        f"1.0.{i}",
                        {"language": "python", "module": "m", "entrypoint": "m", "source": SOURCE + f"# {i}\n"},
                        key=key,
                    ),
                    range(n),
                )
            )
        publish_s = time.perf_counter() - started

        database = []
        for i in range(500):
            t = time.perf_counter()
            client.resolve(f"mod{i % 20}")
            database.append(time.perf_counter() - t)

        source = RegistryModSource(client, ttl_s=3600)
        source.resolve("mod0")
        cached = []
        for _ in range(5000):
            t = time.perf_counter()
            source.resolve("mod0")
            cached.append(time.perf_counter() - t)
        server.should_exit = True

    print(f"\npublish (signed, 8 concurrent clients, PostgreSQL): {n / publish_s:.0f} versions/s")
    print(
        f"resolve via PostgreSQL (HTTP):  p50 {pct(database, 0.5):6.2f} ms  p99 {pct(database, 0.99):6.2f} ms  [p99 <= 20 ms]"
    )
    print(
        f"resolve cached (serving path):  p50 {pct(cached, 0.5):6.3f} ms  p99 {pct(cached, 0.99):6.3f} ms  [p99 <= 2 ms]"
    )
    print(f"ratio database p50 / cached p50: {statistics.median(database) / statistics.median(cached):.0f}x")


if __name__ == "__main__":
    main()
