"""The experiment report: one self-contained HTML file (inline SVG charts, no scripts or CDN) and its JSON."""

from __future__ import annotations

import html
import math
from collections import defaultdict
from typing import Any

from quote_cli.experiments.store import Result

COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"]
CSS = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222}h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left}
.out{white-space:pre-wrap;font-family:ui-monospace,monospace;max-width:480px}
del{color:#c00;background:#fdd}ins{color:#060;background:#dfd;text-decoration:none;font-weight:600}
.sig{font-weight:600}.chart{margin:8px 0}.fail{color:#c00;font-weight:600}.ok{color:#060}
"""


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _svg(width: int, height: int, body: str, label: str) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{html.escape(label)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">{body}</svg>'
    )


def pass_rate_chart(summary: dict[str, Any]) -> str:
    arms = list(summary["arms"])
    w, h, left, bar = 520, 60 + 34 * len(arms), 140, 22
    scale = w - left - 50
    parts = [f'<text x="{left}" y="16" font-size="12">pass rate (all scorers), 95% Wilson interval</text>']
    for i, arm in enumerate(arms):
        s = summary["arms"][arm]
        rate = s["pass_rate"]["all"]
        low, high = s["pass_rate_ci"]["all"]
        y = 30 + i * 34
        rate = 0.0 if math.isnan(rate) else rate
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" font-size="12">{html.escape(arm)}</text>')
        parts.append(
            f'<rect class="bar" x="{left}" y="{y}" width="{rate * scale:.1f}" height="{bar}" fill="{COLORS[i % 8]}"/>'
        )
        if not math.isnan(low):
            x1, x2, ym = left + low * scale, left + high * scale, y + bar / 2
            parts.append(f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{ym}" y2="{ym}" stroke="#000" stroke-width="2"/>')
            for x in (x1, x2):
                parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y + 4}" y2="{y + bar - 4}" stroke="#000"/>')
        parts.append(f'<text x="{left + rate * scale + 6:.1f}" y="{y + 15}" font-size="11">{rate:.0%}</text>')
    axis_y = 30 + len(arms) * 34
    for t in (0, 0.5, 1):
        x = left + t * scale
        parts.append(f'<line x1="{x}" x2="{x}" y1="26" y2="{axis_y}" stroke="#ccc" stroke-dasharray="2"/>')
        parts.append(f'<text x="{x}" y="{axis_y + 14}" font-size="10" text-anchor="middle">{t:.0%}</text>')
    return _svg(w, h, "".join(parts), "pass rate by arm")


def strip_chart(values: dict[str, list[float]], title: str) -> str:
    """Every value as a dot per arm, with the median as a bar: distributions without hiding the sample size."""
    arms = list(values)
    flat = [v for vs in values.values() for v in vs]
    w, h, left = 520, 50 + 34 * len(arms), 140
    top = max(flat) if flat else 1.0
    top = top if top > 0 else 1.0
    scale = (w - left - 30) / top
    parts = [f'<text x="{left}" y="16" font-size="12">{html.escape(title)} (dots: requests; bar: median)</text>']
    for i, arm in enumerate(arms):
        y = 40 + i * 34
        parts.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end" font-size="12">{html.escape(arm)}</text>')
        for j, v in enumerate(values[arm]):
            jitter = (j * 7 % 11) - 5
            parts.append(
                f'<circle class="dot" cx="{left + v * scale:.1f}" cy="{y + jitter}" r="3" '
                f'fill="{COLORS[i % 8]}" fill-opacity="0.6"/>'
            )
        if values[arm]:
            med = sorted(values[arm])[len(values[arm]) // 2]
            x = left + med * scale
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 10}" y2="{y + 10}" stroke="#000" stroke-width="2"/>'
            )
    axis_y = 40 + len(arms) * 34 - 14
    for t in (0, 0.5, 1):
        x = left + t * top * scale
        parts.append(f'<text x="{x:.1f}" y="{axis_y + 12}" font-size="10" text-anchor="middle">{t * top:.4g}</text>')
    return _svg(w, h, "".join(parts), title)


def interventions_chart(results: list[Result], arms: list[str]) -> str:
    """Mean interventions per prompt, one bar per arm, prompts side by side."""
    per: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        per[r.prompt_id][r.arm].append(sum(r.interventions.values()))
    prompts = sorted(per)[:40]
    top = max([sum(v) / len(v) for p in prompts for v in per[p].values() if v] + [1.0])
    group = max(12, 6 * len(arms) + 6)
    w, h, base = max(420, 60 + group * len(prompts)), 200, 170
    parts = ['<text x="40" y="16" font-size="12">interventions per prompt (mean over samples)</text>']
    for pi, prompt in enumerate(prompts):
        for ai, arm in enumerate(arms):
            vals = per[prompt].get(arm) or [0]
            v = sum(vals) / len(vals)
            bh = v / top * 140
            x = 40 + pi * group + ai * 6
            parts.append(
                f'<rect class="bar" x="{x}" y="{base - bh:.1f}" width="5" height="{bh:.1f}" fill="{COLORS[ai % 8]}"/>'
            )
        parts.append(f'<text x="{40 + pi * group}" y="{base + 14}" font-size="9">{html.escape(prompt[:6])}</text>')
    parts.append(f'<line x1="38" x2="{w}" y1="{base}" y2="{base}" stroke="#999"/>')
    parts.append(f'<text x="4" y="34" font-size="10">{top:.3g}</text>')
    return _svg(w, h, "".join(parts), "interventions per prompt")


def _legend(arms: list[str]) -> str:
    return " ".join(
        f'<span style="display:inline-block;width:10px;height:10px;background:{COLORS[i % 8]}"></span> {html.escape(a)}'
        for i, a in enumerate(arms)
    )


def _marked(r: Result) -> str:
    if r.error:
        return f'<span class="fail">error: {html.escape(r.error)}</span>'
    if not r.segments:
        return html.escape(r.text)
    out = []
    for kind, text in r.segments:
        t = html.escape(text)
        out.append(f"<del>{t}</del>" if kind == "erased" else f"<ins>{t}</ins>" if kind == "forced" else t)
    return "".join(out)


def render_html(
    name: str,
    summary: dict[str, Any],
    results: list[Result],
    arms: list[str],
    prompts: dict[str, str],
    timeline_base: str,
    checks: list[dict[str, Any]],
) -> str:
    ok = [r for r in results if r.error is None]
    tokens = {a: [float(r.completion_tokens) for r in ok if r.arm == a] for a in arms}
    latency = {a: [r.total_ms for r in ok if r.arm == a] for a in arms}
    ttft = {a: [r.ttft_ms for r in ok if r.arm == a and r.ttft_ms is not None] for a in arms}
    head = "<tr><th>arm</th><th>n</th><th>pass rate (95% CI)</th><th>finish reasons</th><th>tokens p50/p90</th>"
    head += "<th>TTFT ms p50</th><th>total ms p50/p90</th><th>interventions</th><th>forced / erased</th>"
    head += "<th>mod errors</th></tr>"
    rows = []
    for arm in arms:
        s = summary["arms"][arm]
        low, high = s["pass_rate_ci"]["all"]
        rates = ", ".join(f"{k} {_fmt(v)}" for k, v in s["pass_rate"].items() if k != "all")
        rows.append(
            f"<tr><td>{html.escape(arm)}</td><td>{s['n']}</td>"
            f"<td>{_fmt(s['pass_rate']['all'])} ({_fmt(low)}–{_fmt(high)})<br><small>{html.escape(rates)}</small></td>"
            f"<td>{html.escape(str(s['finish_reasons']))}</td>"
            f"<td>{_fmt(s['completion_tokens']['p50'])} / {_fmt(s['completion_tokens']['p90'])}</td>"
            f"<td>{_fmt(s['ttft_ms']['p50'])}</td><td>{_fmt(s['total_ms']['p50'])} / {_fmt(s['total_ms']['p90'])}</td>"
            f"<td>{html.escape(str(s['interventions']))}</td><td>{s['forced_tokens']} / {s['erased_tokens']}</td>"
            f"<td>{s['mod_errors']}</td></tr>"
        )
    comp = []
    for c in summary["comparisons"]:
        for metric in ("pass_rate", "completion_tokens", "total_ms"):
            m = c[metric]
            cls = ' class="sig"' if m["significant"] else ""
            comp.append(
                f"<tr><td>{html.escape(c['b'])} − {html.escape(c['a'])}</td><td>{metric}</td>"
                f"<td{cls}>{_fmt(m['diff'])}</td><td>[{_fmt(m['ci'][0])}, {_fmt(m['ci'][1])}]</td><td>{m['pairs']}</td>"
                f"<td>{'yes' if m['significant'] else 'no'}</td></tr>"
            )
    check_rows = "".join(
        f'<li class="{"fail" if c["failed"] else "ok"}">{html.escape(c["condition"])}: '
        f"{'FAILED' if c['failed'] else 'passed'}</li>"
        for c in checks
    )
    by_prompt: dict[str, dict[str, Result]] = defaultdict(dict)
    for r in results:
        if r.sample == 0:
            by_prompt[f"{r.model} · {r.prompt_id}"].setdefault(r.arm, r)
    side = []
    for key in sorted(by_prompt):
        pid = key.split(" · ", 1)[1]
        cells = []
        for arm in arms:
            found = by_prompt[key].get(arm)
            if found is None:
                cells.append("<td></td>")
                continue
            r = found
            verdict = " ".join(f"{k}:{'✓' if v else '✗'}" for k, v in r.scores.items())
            link = (
                f'<a href="{html.escape(timeline_base)}?trace={html.escape(r.trace_id)}">timeline</a>'
                if r.trace_id
                else ""
            )
            cells.append(f'<td><div class="out">{_marked(r)}</div><small>{html.escape(verdict)} {link}</small></td>')
        side.append(
            f'<tr><td><b>{html.escape(key)}</b><div class="out">{html.escape(prompts.get(pid, ""))}</div></td>'
            f"{''.join(cells)}</tr>"
        )
    arm_heads = "".join(f"<th>{html.escape(a)}</th>" for a in arms)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(name)} — Quote experiment</title>
<style>{CSS}</style></head><body><h1>{html.escape(name)}</h1>
<p>{len(results)} requests; arms: {_legend(arms)}. The first arm is the baseline.</p>
{f"<h2>Thresholds</h2><ul>{check_rows}</ul>" if checks else ""}
<h2>Arms</h2><table>{head}{"".join(rows)}</table>
<h2>Differences against the baseline (paired bootstrap, 95%)</h2>
<table><tr><th>arms</th><th>metric</th><th>difference</th><th>95% CI</th><th>prompts</th>
<th>real (CI excludes 0)</th></tr>
{"".join(comp)}</table>
<h2>Charts</h2><div id="charts">{pass_rate_chart(summary)}
{strip_chart(tokens, "completion tokens")}{strip_chart(ttft, "time to first token, ms")}
{strip_chart(latency, "total latency, ms")}<div>{interventions_chart(results, arms)}<br>{_legend(arms)}</div></div>
<h2>Outputs, side by side (sample 0)</h2><p><ins>forced</ins> text was injected by a mod; <del>erased</del> text was
sampled and then backtracked.</p><table><tr><th>prompt</th>{arm_heads}</tr>{"".join(side)}</table>
</body></html>"""
