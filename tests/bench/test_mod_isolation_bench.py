"""bench/mod_isolation.py runs end to end in --quick mode and prints every row (never its timings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
CONFIGS = ["no mod", "inline noop", "isolated noop", "inline mask", "isolated mask"]


@pytest.mark.slow
def test_quick_mode_prints_every_configuration_and_ratio() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "mod_isolation.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=280,  # pytest.ini gives every test 300 s; alone on 2 cores it takes about 45 s
        cwd=BENCH.parent,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    for config in CONFIGS:
        for n in (1, 8):
            row = [ln for ln in lines if ln.startswith(config) and ln[len(config) :].split()[:1] == [str(n)]]
            assert len(row) == 1, f"no row for {config!r} at {n} requests in:\n{done.stdout}"
            assert row[0].split()[-1] == "0", f"requests failed in {row[0]!r}"
    for kind in ("noop", "mask"):
        for n in ("1 request ", "8 requests"):
            assert any(f"isolated/inline {kind}, {n}:" in ln for ln in lines), done.stdout
    assert "[>= 0.85]" in done.stdout
