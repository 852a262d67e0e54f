"""`quote experiment run|report`: the CLI face of quote_cli.experiments (errors are one line, exit 1)."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import typer

experiment_app = typer.Typer(help="A/B experiments: mods over a prompt set, scored and compared.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _default_out(spec_path: Path) -> Path:
    return spec_path.with_suffix(".results.sqlite")


@experiment_app.command("run")
def run_command(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="The experiment spec (YAML)"),
    out: Path = typer.Option(None, "--out", help="Results file (SQLite; default SPEC.results.sqlite)"),
    fresh: bool = typer.Option(False, "--fresh", help="Discard results of another spec in --out instead of refusing"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar (a resume still says what it skips)"),
) -> None:
    """Run every (model, arm, prompt, sample) not yet in the results file; rerun to resume."""
    from quote_cli.experiments.fail_if import ConditionError
    from quote_cli.experiments.runner import EndpointError, fingerprint, jobs, run_async
    from quote_cli.experiments.scorers import build_all
    from quote_cli.experiments.spec import SpecError, load_prompts, load_spec
    from quote_cli.experiments.store import Store

    try:
        spec = load_spec(spec_path)
        prompts = load_prompts(spec)
        scorers = build_all(spec)
    except (SpecError, ConditionError) as exc:
        raise _fail(str(exc)) from exc
    store = Store(out or _default_out(spec_path))
    try:
        store.check_spec(fingerprint(spec, prompts), force=fresh)
        store.set_meta("spec_file", str(spec_path.resolve()))
        total = len(spec.models) * len(spec.arms) * len(prompts) * spec.samples
        todo = len(jobs(spec, prompts, store.done()))
        if not quiet or todo < total:  # a resume always says what it skips
            typer.echo(f"{spec.name}: {total - todo} of {total} done, {todo} to run → {store.path}", err=True)
        if quiet or todo == 0:
            asyncio.run(run_async(spec, prompts, store, scorers))
        else:
            with typer.progressbar(length=todo, label="requests", file=None) as bar:
                asyncio.run(run_async(spec, prompts, store, scorers, progress=bar.update))
    except (ValueError, EndpointError) as exc:
        raise _fail(str(exc)) from exc
    except KeyboardInterrupt as exc:
        typer.echo("interrupted: rerun the same command to continue", err=True)
        raise typer.Exit(code=130) from exc
    finally:
        store.close()


def build_report(spec_path: Path, out: Path | None) -> tuple[dict[str, Any], str]:
    from quote_cli.experiments.fail_if import evaluate
    from quote_cli.experiments.report import render_html
    from quote_cli.experiments.spec import load_prompts, load_spec
    from quote_cli.experiments.stats import summarize
    from quote_cli.experiments.store import Store

    spec = load_spec(spec_path)
    prompts = load_prompts(spec)
    path = out or _default_out(spec_path)
    if not path.is_file():
        raise ValueError(f"{path}: no results; run `quote experiment run {spec_path}` first")
    store = Store(path)
    try:
        results = store.results()
    finally:
        store.close()
    arms = [a.name for a in spec.arms]
    summary = summarize(results, arms, [s.name for s in spec.scorers], seed=spec.seed)
    checks = [{"condition": c, "failed": evaluate(c, summary["arms"])} for c in spec.fail_if]
    summary["checks"] = checks
    summary["name"] = spec.name
    timeline = spec.base_url.rstrip("/").removesuffix("/v1") + "/timeline"
    texts = {p.id: "\n".join(m["content"] for m in p.messages) for p in prompts}
    return summary, render_html(spec.name, summary, results, arms, texts, timeline, checks)


def _clean(value: Any) -> Any:
    """JSON without NaN (not valid JSON): a metric with no data is null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


@experiment_app.command("report")
def report_command(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="The experiment spec (YAML)"),
    out: Path = typer.Option(None, "--out", help="Results file (default SPEC.results.sqlite)"),
    html_path: Path = typer.Option(None, "--html", help="Where to write the report (default SPEC.report.html)"),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON (for CI) instead of a table"),
) -> None:
    """Write the HTML report; exit 2 when a `fail_if` threshold holds."""
    from quote_cli.experiments.fail_if import ConditionError
    from quote_cli.experiments.spec import SpecError

    try:
        summary, page = build_report(spec_path, out)
    except (SpecError, ConditionError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    target = html_path or spec_path.with_suffix(".report.html")
    target.write_text(page)
    if as_json:
        typer.echo(json.dumps(_clean(summary), indent=2))
    else:
        for arm, s in summary["arms"].items():
            typer.echo(
                f"{arm:>16}: n={s['n']} pass={s['pass_rate']['all']:.3f} tokens p50={s['completion_tokens']['p50']} "
                f"interventions={sum(s['interventions'].values())} errors={s['errors']}"
            )
        for c in summary["comparisons"]:
            p = c["pass_rate"]
            typer.echo(f"{c['b']} − {c['a']}: pass rate {p['diff']:+.3f} [{p['ci'][0]:+.3f}, {p['ci'][1]:+.3f}]")
        typer.echo(f"report: {target}", err=True)
    failed = [c["condition"] for c in summary["checks"] if c["failed"]]
    if failed:
        typer.echo(f"threshold failed: {'; '.join(failed)}", err=True)
        raise typer.Exit(code=2)
