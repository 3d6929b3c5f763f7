"""A self-contained HTML page for one gate run: checks, failures, drift and inline SVG histograms."""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["render_html", "histogram_svg"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#222;max-width:1100px}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}
th{background:#f4f4f4}.passed{color:#1a7f37}.quarantined,.warned{color:#9a6700}.rejected{color:#cf222e}
.feature{display:inline-block;margin:.5rem 1rem .5rem 0;vertical-align:top}.legend span{margin-right:1rem}
code{background:#f4f4f4;padding:0 .2rem}
"""


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(_text(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_text(x)}" for k, x in v.items())
    return str(v)


def histogram_svg(batch: dict[str, Any], baseline: dict[str, Any] | None = None, width: int = 320) -> str:
    """Bars of a batch histogram, with the baseline's (same bins) as an outline when given."""
    counts = batch.get("counts") or []
    if not counts:
        return "<svg width='1' height='1'></svg>"
    height, pad = 120, 20
    total = sum(counts) or 1
    shares = [c / total for c in counts]
    base_shares: list[float] = []
    if baseline and len(baseline.get("counts", [])) == len(counts):
        btotal = sum(baseline["counts"]) or 1
        base_shares = [c / btotal for c in baseline["counts"]]
    top = max([*shares, *base_shares, 1e-9])
    bw = (width - 2 * pad) / len(counts)
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height + 30}' role='img'>"]
    for i, s in enumerate(shares):
        h = s / top * height
        x = pad + i * bw
        parts.append(
            f"<rect x='{x:.1f}' y='{height - h + 5:.1f}' width='{bw - 1:.1f}' height='{h:.1f}' fill='#4c8bf5'/>"
        )
    if base_shares:
        pts = []
        for i, s in enumerate(base_shares):
            y = height - s / top * height + 5
            pts += [f"{pad + i * bw:.1f},{y:.1f}", f"{pad + (i + 1) * bw:.1f},{y:.1f}"]
        parts.append(f"<polyline points='{' '.join(pts)}' fill='none' stroke='#cf222e' stroke-width='1.5'/>")
    edges = batch.get("edges") or []
    if edges:
        parts.append(f"<text x='{pad}' y='{height + 22}' font-size='10'>{edges[0]:.4g}</text>")
        parts.append(
            f"<text x='{width - pad}' y='{height + 22}' font-size='10' text-anchor='end'>{edges[-1]:.4g}</text>"
        )
    extra = f"under {batch.get('under', 0)}, over {batch.get('over', 0)}"
    parts.append(f"<text x='{width / 2:.0f}' y='{height + 22}' font-size='10' text-anchor='middle'>{extra}</text>")
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: dict[str, Any], baseline: dict[str, Any] | None = None) -> str:
    """The page for one report (as stored in the history); opens offline, no scripts."""
    status = str(report.get("status", ""))
    title = f"Gate report {report.get('view')} {report.get('run_id')}"
    summary: list[list[Any]] = [
        ["view", report.get("view")],
        ["version", report.get("version")],
        ["write path", report.get("path")],
        ["run", report.get("run_id")],
        ["time", report.get("time")],
        ["policy", report.get("policy")],
        ["rows checked", report.get("rows_checked")],
        ["rows written", report.get("rows_written")],
        ["rows quarantined", report.get("rows_quarantined")],
        ["bad fraction", f"{report.get('bad_fraction', 0):.4%} (budget {report.get('max_bad_fraction', 0):.2%})"],
        ["quarantine file", report.get("quarantine_file")],
    ]
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}: <span class='{escape(status)}'>{escape(status)}</span></h1>",
        f"<p>{escape(str(report.get('message', '')))}</p>",
        _table(["", ""], summary),
        "<h2>Failed checks</h2>",
    ]
    failures = report.get("failures") or {}
    if failures:
        rows = [
            [v.get("check"), v.get("column") or "(batch)", v.get("level"), v.get("count")] for v in failures.values()
        ]
        out.append(_table(["check", "column", "level", "failures"], rows))
    else:
        out.append("<p>No check failed.</p>")
    sample = report.get("sample") or []
    if sample:
        out.append("<h2>Sample of failing rows</h2>")
        rows = [[s.get("row"), s.get("check"), s.get("column"), s.get("value"), s.get("key")] for s in sample]
        out.append(_table(["row", "check", "column", "value", "key"], rows))
    drift = report.get("drift")
    if drift:
        out.append("<h2>Drift (population stability index)</h2>")
        if "psi" in drift:
            rows = [[k, v, "drift" if k in drift.get("drifted", []) else "ok"] for k, v in drift["psi"].items()]
            out.append(f"<p>threshold {escape(_text(drift.get('threshold')))}; fails the gate: {drift.get('fail')}</p>")
            out.append(_table(["feature", "PSI", "status"], rows))
        else:
            out.append(f"<p>{escape(_text(drift.get('status')))}: {escape(_text(drift.get('message')))}</p>")
    for note in report.get("notes") or []:
        out.append(f"<p><em>{escape(note)}</em></p>")
    profile = report.get("profile") or {}
    if profile:
        base_features = (baseline or {}).get("features", {})
        out.append("<h2>Features in this batch</h2>")
        out.append(
            "<p class='legend'><span style='color:#4c8bf5'>&#9632; batch</span>"
            + ("<span style='color:#cf222e'>&#8212; baseline</span>" if base_features else "")
            + "</p>"
        )
        for name, stats in profile.items():
            out.append(f"<div class='feature'><h3>{escape(name)}</h3>")
            out.append(
                f"<p>nulls {stats.get('null_fraction', 0):.2%}, min {escape(_text(stats.get('min')))}, "
                f"max {escape(_text(stats.get('max')))}</p>"
            )
            if "histogram" in stats:
                base_hist = base_features.get(name, {}).get("histogram")
                out.append(histogram_svg(stats["histogram"], base_hist))
            elif "top" in stats:
                out.append(_table(["value", "count"], [list(t) for t in stats["top"]]))
            out.append("</div>")
    out.append("</body></html>")
    return "\n".join(out)
