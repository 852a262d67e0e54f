"""Issue 13, `--mod-isolation process`: at a real `quote serve` with the real openai client, each
attack runs in the mod's own confined worker process and fails (or finds nothing) there alone;
concurrent requests complete and the replica stays ready."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.serving.conftest import Server, start_server
from tests.serving.test_bad_input import bundle

MODEL = "quote-tiny"
SECRET = "gateway-secret-that-no-mod-may-ever-read-0123456789"
BUDGET_MS = 1500

MODS = {
    "env_reader": """
        import os
        @mod
        def env_reader(event, actions, tokenizer):
            if isinstance(event, ForwardPass):
                found = [k for k in os.environ if k.startswith("QUOTE")]
                return actions.force_output(tokenizer.encode("ENV:" + ",".join(found) + ";"))
    """,
    "socket_opener": """
        import socket
        @mod
        def socket_opener(event, actions, tokenizer):
            if isinstance(event, ForwardPass):
                try:
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    said = "OPENED"
                except OSError as exc:
                    said = "REFUSED"
                return actions.force_output(tokenizer.encode(said))
    """,
    "execer": """
        import subprocess
        @mod
        def execer(event, actions, tokenizer):
            if isinstance(event, ForwardPass):
                try:
                    subprocess.run(["/bin/true"], check=True)
                    said = "RAN"
                except OSError:
                    said = "REFUSED"
                return actions.force_output(tokenizer.encode(said))
    """,
    "killer": """
        import os, signal
        @mod
        def killer(event, actions, tokenizer):
            if isinstance(event, ForwardPass):
                try:
                    os.kill(os.getppid(), signal.SIGKILL)
                    said = "KILLED"
                except OSError:
                    said = "REFUSED"
                return actions.force_output(tokenizer.encode(said))
    """,
    "sleeper": """
        import time
        @mod
        def sleeper(event, actions):
            if isinstance(event, ForwardPass) and event.step == 2:
                time.sleep(30)
    """,
    "spinner": """
        @mod
        def spinner(event, actions):
            if isinstance(event, ForwardPass) and event.step == 2:
                while True:
                    pass
    """,
    "exiter": """
        import os
        @mod
        def exiter(event, actions):
            if isinstance(event, ForwardPass) and event.step == 2:
                os._exit(1)
    """,
    "forger": """
        import gc
        @mod
        def forger(event, actions):
            if isinstance(event, ForwardPass) and event.step == 2:  # a frame of its own on the channel:
                out = next(o for o in gc.get_objects() if type(o).__name__ == "Worker").out
                header = b"[" * 200000 + b"]" * 200000  # JSON nested past any parser's recursion
                out.write(len(header).to_bytes(4, "big") + bytes(4) + header)
                out.flush()
    """,
    "bomb": """
        @mod
        def bomb(event, actions):
            if isinstance(event, ForwardPass) and event.step == 2:
                hoard = []
                while True:
                    hoard.append(bytearray(64 << 20))
    """,
    "snoop": """
        import gc
        @mod
        def snoop(event, actions, tokenizer):
            if isinstance(event, ForwardPass):
                needle = "-".join(["TENANT", "A", "PRIVATE"])  # never one constant: this source is in the worker too
                hit = False
                for o in gc.get_objects():
                    items = o.values() if isinstance(o, dict) else o if isinstance(o, (list, tuple)) else ()
                    for x in items:  # one level down too: a dict of strings alone is not tracked by gc
                        inner = list(x.values()) if isinstance(x, dict) else [x]
                        hit = hit or any(isinstance(y, str) and needle in y for y in inner)
                return actions.force_output(tokenizer.encode("LEAK" if hit else "CLEAN"))
    """,
    "masker": """
        @mod(max_backtrack=0)
        def masker(event, actions):
            if isinstance(event, ForwardPass):
                row = event.logits.clone()
                row[:] = -1e9
                row[7] = 0.0
                return actions.adjust_logits(row)
    """,
}


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("isolated") / "serve.log"
    env = {"QUOTE_GATEWAY_SECRET": SECRET, "QUOTE_MOD_BUDGET_MS": str(BUDGET_MS), "QUOTE_MOD_MEMORY_MB": "1536"}
    env_no_gateway = {k: v for k, v in env.items() if k != "QUOTE_GATEWAY_SECRET"}
    # The secret is in the serving process's environment (as QUOTE_GATEWAY_SECRET_UNUSED, so the
    # dev-mode API stays open without a gateway): exactly what a mod must never see.
    env_no_gateway["QUOTE_GATEWAY_SECRET_UNUSED"] = SECRET
    srv = start_server(log, "--max-batch", "8", "--mod-isolation", "process", env=env_no_gateway)
    with httpx.Client(base_url=srv.base_url, timeout=120) as http:
        for name, body in MODS.items():
            answer = http.post("/v1/mods", json=bundle(name, body))
            assert answer.status_code in (200, 201), answer.text
    yield srv
    srv.process.terminate()
    srv.process.wait(timeout=15)


@pytest.fixture(scope="module")
def client(isolated: Server) -> Any:
    return openai.OpenAI(base_url=isolated.v1, api_key="unused", max_retries=0, timeout=120)


def _ask(client: Any, model: str, content: str = "Hi", max_tokens: int = 8) -> Any:
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], max_tokens=max_tokens, temperature=0
    )


def _text(client: Any, mod: str) -> str:
    return str(_ask(client, f"{MODEL}/{mod}").choices[0].message.content)


def test_start_log_names_the_mode_and_each_confinement_layer(isolated: Server) -> None:
    text = Path(isolated.log).read_text()
    # Applied layers are logged at info; one this host lacks would be named here, at warning.
    # Every layer applies on this host (Landlock ABI 7 included): tests/serving/test_mod_workers.py.
    assert "not applied" not in text and "unavailable" not in text
    with httpx.Client(base_url=isolated.base_url) as http:
        assert http.get("/readyz").status_code == 200


def test_a_mod_finds_no_secret_in_its_environment(client: Any) -> None:
    assert os.environ.get("QUOTE_GATEWAY_SECRET_UNUSED") is None  # only the server had it
    text = _text(client, "env_reader")
    assert text.startswith("ENV:") and "QUOTE" not in text


@pytest.mark.parametrize("mod", ["socket_opener", "execer", "killer"])
def test_sockets_exec_and_signals_to_others_are_refused(client: Any, isolated: Server, mod: str) -> None:
    assert _text(client, mod) == "REFUSED"
    assert isolated.process.poll() is None


def test_a_mod_in_its_worker_adjusts_logits_like_inline(client: Any) -> None:
    reply = _ask(client, f"{MODEL}/masker", max_tokens=4)
    assert reply.choices[0].finish_reason in ("length", "stop")


@pytest.mark.parametrize("mod", ["sleeper", "spinner", "exiter", "forger", "bomb"])
def test_the_attack_fails_its_own_request_only_and_the_mod_works_again(client: Any, isolated: Server, mod: str) -> None:
    with ThreadPoolExecutor(3) as pool:
        others = [pool.submit(_ask, client, MODEL, f"hello {i}", 16) for i in range(2)]
        started = time.monotonic()
        with pytest.raises(openai.UnprocessableEntityError) as caught:
            _ask(client, f"{MODEL}/{mod}")
        took = time.monotonic() - started
        replies = [f.result() for f in others]
    assert mod in str(caught.value)
    assert took < BUDGET_MS / 1000 + 10  # the budget, plus a worker restart for the earlier steps at most
    assert all(r.choices[0].message.content for r in replies)
    # The worker was killed or died and is replaced: the same tenant's mods work again.
    assert _text(client, "env_reader").startswith("ENV:")
    assert isolated.process.poll() is None


# Another tenant's prompt in a worker's memory (gc.get_objects()): tests/serving/test_mod_workers.py


def test_dropped_workers_are_counted_by_reason_in_prometheus(client: Any, isolated: Server) -> None:
    with pytest.raises(openai.UnprocessableEntityError):
        _ask(client, f"{MODEL}/sleeper")  # past its budget: its worker is killed
    text = httpx.get(isolated.base_url + "/metrics").text
    counted = {
        line.split('reason="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("quote_mod_worker_restarts_total{")
    }
    assert counted.get("timeout", 0) >= 1
