"""A self-contained HTML report: stacked step-time charts as inline SVG (no scripts, no downloads)."""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["to_html", "svg_chart", "COLOURS"]

COLOURS = {
    "data_fetch": "#e45756",
    "host_to_device": "#f58518",
    "forward": "#4c78a8",
    "backward": "#72b7b2",
    "optimizer_step": "#54a24b",
    "zero_grad": "#88d27a",
    "callbacks": "#b279a2",
    "logging": "#ff9da6",
    "validation": "#eeca3b",
    "checkpoint": "#9d755d",
    "other": "#bab0ac",
    "excluded": "#dddddd",
}


def svg_chart(points: list[list[float]], categories: list[str], steps_per_point: int, title: str,
              width: int = 760, height: int = 220) -> str:
    """Stacked bars of milliseconds per step by category, one bar per timeline point."""
    if not points:
        return f"<p>{escape(title)}: no steps measured.</p>"
    left, bottom, top = 48, 24, 20
    plot_w, plot_h = width - left - 8, height - bottom - top
    totals = [sum(p) for p in points]
    peak = max(totals) or 1e-9
    bar = plot_w / len(points)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<text x="{left}" y="14" font-size="12">{escape(title)}</text>']
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="2" y="{y + 4:.1f}" font-size="10">{1e3 * peak * frac:.2f} ms</text>')
    for i, point in enumerate(points):
        y = top + plot_h
        x = left + i * bar
        for c, value in enumerate(point):
            if value <= 0:
                continue
            h = plot_h * value / peak
            y -= h
            colour = COLOURS.get(categories[c], "#999")
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar - 0.5, 0.5):.1f}" height="{h:.2f}" '
                         f'fill="{colour}"><title>{escape(categories[c])}: {1e3 * value:.3f} ms/step</title></rect>')
    last = len(points) * steps_per_point
    parts.append(f'<text x="{left}" y="{height - 6}" font-size="10">step 0</text>')
    parts.append(f'<text x="{width - 80}" y="{height - 6}" font-size="10">step ~{last}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _legend(categories: list[str]) -> str:
    items = "".join(f'<span style="margin-right:12px"><span style="display:inline-block;width:10px;height:10px;'
                    f'background:{COLOURS.get(c, "#999")}"></span> {escape(c)}</span>' for c in categories)
    return f'<p style="font-size:12px">{items}</p>'


def to_html(report: dict[str, Any]) -> str:
    """The report as one HTML page."""
    timeline = report["timeline"]
    categories = timeline["categories"]
    st = report["step_time"]
    rows = "".join(
        f"<tr><td>{i}</td><td><code>{escape(f['code'])}</code></td><td>{escape(f['severity'])}</td>"
        f"<td>{100 * f['share']:.1f}%</td><td>{escape(str(f['where']))}</td><td>{escape(f['recommendation'])}</td>"
        f"<td>{escape(', '.join(f'{k}={v}' for k, v in f['evidence'].items()))}</td></tr>"
        for i, f in enumerate(report["findings"], 1)
    ) or '<tr><td colspan="7">No bottleneck found.</td></tr>'
    phases = "".join(f"<tr><td>{escape(n)}</td><td>{p['seconds']:.4f}</td><td>{100 * p['share']:.1f}%</td></tr>"
                     for n, p in report["phases"].items())
    charts = [svg_chart(timeline["points"], categories, timeline["steps_per_point"],
                        "Step time by phase over the run (rank 0)")]
    ranks = report.get("ranks") or []
    if len(ranks) > 1:
        for r in ranks:
            charts.append(svg_chart(r["timeline"], categories, r["steps_per_point"], f"Rank {r['rank']}"))
    rank_rows = "".join(f"<tr><td>{r['rank']}</td><td>{r['steps']}</td><td>{r['step_median_ms']} ms</td>"
                        f"<td>{r['rss_peak_mb']} MB</td></tr>" for r in ranks) if len(ranks) > 1 else ""
    rank_table = (f"<h2>Ranks</h2><table><tr><th>rank</th><th>steps</th><th>median step</th><th>RSS peak</th></tr>"
                  f"{rank_rows}</table>") if rank_rows else ""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Bottleneck report</title><style>"
        "body{font-family:sans-serif;margin:24px}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}</style></head><body>"
        f"<h1>Bottleneck report</h1><p>{report['steps_measured']} steps ({escape(report['status'])}); "
        f"median step {1e3 * (st['median'] or 0):.2f} ms, p90 {1e3 * (st['p90'] or 0):.2f} ms, "
        f"max {1e3 * (st['max'] or 0):.2f} ms.</p>"
        + "".join(f"<p class='note'><strong>Note:</strong> {escape(n)}</p>" for n in report.get("notes") or [])
        + f"<h2>Findings</h2><table><tr><th>#</th><th>code</th><th>severity</th><th>share</th><th>where</th>"
        f"<th>recommendation</th><th>evidence</th></tr>{rows}</table>"
        f"<h2>Step time over the run</h2>{_legend(categories)}{''.join(charts)}{rank_table}"
        f"<h2>Phases</h2><table><tr><th>phase</th><th>seconds</th><th>share</th></tr>{phases}</table>"
        "</body></html>\n"
    )
