"""`quote experiment run|report` end to end against a real `quote serve --model tiny`, as a user runs them."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.experiments.conftest import quote, write_spec
from tests.ports import free_port
from tests.serving.conftest import Server


def rows(db: Path) -> dict[tuple[str, str], dict[str, object]]:
    if not db.exists():
        return {}
    with sqlite3.connect(db) as conn:
        try:
            data = [json.loads(d) for (d,) in conn.execute("SELECT data FROM results")]
        except sqlite3.OperationalError:
            return {}
    return {(d["arm"], d["prompt_id"]): d for d in data}


def test_a_run_measures_the_mod_and_the_report_compares_the_arms(finished: Path) -> None:
    results = rows(finished.with_suffix(".results.sqlite"))
    assert len(results) == 10
    for (arm, _), r in results.items():
        assert r["error"] is None and r["finish_reason"] in ("length", "stop") and r["trace_id"]
        assert r["completion_tokens"] > 0 and r["ttft_ms"] is not None and r["total_ms"] >= r["ttft_ms"]
        if arm == "rewriter":
            assert r["interventions"].get("backtrack", 0) > 0 and r["forced_tokens"] > 0 and r["erased_tokens"] > 0
            assert r["scores"] == {"says_ok": True}
            assert {k for k, _ in r["segments"]} >= {"sampled", "forced", "erased"}
        else:
            assert r["interventions"] == {} and r["forced_tokens"] == r["erased_tokens"] == 0
    report = quote("experiment", "report", finished, "--json")
    assert report.returncode == 0, report.stderr
    summary = json.loads(report.stdout)
    assert summary["arms"]["rewriter"]["pass_rate"]["says_ok"] == 1.0
    [diff] = summary["comparisons"]
    assert diff["pass_rate"]["diff"] == 1 - summary["arms"]["base"]["pass_rate"]["says_ok"]
    html = finished.with_suffix(".report.html").read_text()
    assert "<del>" in html and "<ins>" in html and "/timeline?trace=chatcmpl-" in html
    assert "<script" not in html and "http://cdn" not in html and "https://" not in html


def test_a_failed_threshold_exits_non_zero_for_ci(finished: Path) -> None:
    spec = finished.read_text()
    strict = finished.with_name("strict.yaml")
    strict.write_text(spec + 'fail_if: ["pass_rate(rewriter) < pass_rate(base) + 1.5"]\n')
    lenient = finished.with_name("lenient.yaml")
    lenient.write_text(spec + 'fail_if: ["pass_rate(rewriter) < pass_rate(base) + 0.05"]\n')
    db = finished.with_suffix(".results.sqlite")
    failing = quote("experiment", "report", strict, "--out", db, "--json")
    assert failing.returncode == 2 and "threshold failed: pass_rate(rewriter)" in failing.stderr
    assert json.loads(failing.stdout)["checks"] == [
        {"condition": "pass_rate(rewriter) < pass_rate(base) + 1.5", "failed": True}
    ]
    passing = quote("experiment", "report", lenient, "--out", db)
    assert passing.returncode == 0, passing.stderr


def test_an_interrupted_run_continues_where_it_stopped(served: Server, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, served.base_url, concurrency=1, max_tokens=12)
    db = spec.with_suffix(".results.sqlite")
    process = subprocess.Popen(
        [sys.executable, "-m", "quote_cli", "experiment", "run", str(spec), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(rows(db)) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    first = rows(db)
    assert 2 <= len(first) < 10, err
    assert process.returncode == 130 and "rerun the same command to continue" in err
    again = quote("experiment", "run", spec, "--quiet")
    assert again.returncode == 0, again.stderr
    assert f"{len(first)} of 10 done, {10 - len(first)} to run" in again.stderr
    final = rows(db)
    assert len(final) == 10
    assert all(final[key]["trace_id"] == first[key]["trace_id"] for key in first)  # kept, not re-run
    third = quote("experiment", "run", spec, "--quiet")
    assert "10 of 10 done, 0 to run" in third.stderr and rows(db) == final


def test_user_mistakes_are_one_line_errors(served: Server, tmp_path: Path) -> None:
    folders = {name: tmp_path / name for name in ("missing", "down", "resume")}
    for folder in folders.values():
        folder.mkdir()
    bad = tmp_path / "bad.yaml"
    bad.write_text("prompts: p.jsonl\nmodels: quote-tiny\narms: [{name: a}\n")
    missing = write_spec(folders["missing"], served.base_url)
    (folders["missing"] / "prompts.jsonl").unlink()
    down = write_spec(folders["down"], f"http://127.0.0.1:{free_port()}")
    cases = [
        (bad, "not valid YAML"),
        (missing, "prompts.jsonl: prompt file not found"),
        (tmp_path / "nope.yaml", "no such spec file"),
        (down, "cannot connect"),
    ]
    for spec, message in cases:
        done = quote("experiment", "run", spec, "--quiet")
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip().startswith("error: ") and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    report = quote("experiment", "report", tmp_path / "nope.yaml")
    assert report.returncode == 1 and len(report.stderr.strip().splitlines()) == 1


def test_a_results_file_of_another_spec_is_not_resumed(served: Server, tmp_path: Path) -> None:
    """Resuming with a changed spec would mix incomparable rows: refused unless --fresh."""
    spec = write_spec(tmp_path, served.base_url, max_tokens=4)
    spec.write_text(
        spec.read_text()
        .replace("samples: 1", "samples: 1\nmodels: [quote-tiny]")
        .replace("models: [quote-tiny]\narms", "arms", 1)
    )
    shared = tmp_path / "shared.sqlite"
    (tmp_path / "prompts.jsonl").write_text('{"id": "only", "prompt": "hi"}\n')
    assert quote("experiment", "run", spec, "--out", shared, "--quiet").returncode == 0
    changed = tmp_path / "changed.yaml"
    changed.write_text(spec.read_text().replace("max_tokens: 4", "max_tokens: 5"))
    refused = quote("experiment", "run", changed, "--out", shared, "--quiet")
    assert refused.returncode == 1 and "holds results of another spec" in refused.stderr
    fresh = quote("experiment", "run", changed, "--out", shared, "--quiet", "--fresh")
    assert fresh.returncode == 0 and len(rows(shared)) == 2
