"""Render a report as JSON, Markdown and a one-screen console summary (rich when installed), and write its files."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from lightning_optkit._files import write_atomic
from lightning_optkit.profiling.html import to_html

__all__ = ["to_json", "to_markdown", "console_text", "print_console", "write_report"]

_TOP_PHASES = 8


def to_json(report: dict[str, Any]) -> str:
    """The report as indented JSON."""
    return json.dumps(report, indent=1, sort_keys=False, default=str)


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"


def _ms(seconds: Any) -> str:
    return "-" if seconds is None else f"{1e3 * float(seconds):.2f} ms"


def to_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown document."""
    st = report["step_time"]
    lines = [
        "# Bottleneck report",
        "",
        f"{report['steps_measured']} steps measured ({report['status']}); step time median {_ms(st['median'])}, "
        f"p90 {_ms(st['p90'])}, max {_ms(st['max'])}.",
        "",
        *[f"> **Note:** {note}\n" for note in report.get("notes") or []],
        "## Findings",
        "",
    ]
    if report["findings"]:
        lines += ["| # | code | severity | share | where | recommendation |", "|---|---|---|---|---|---|"]
        for i, f in enumerate(report["findings"], 1):
            share = _pct(f["share"]) + (" of memory" if f.get("share_of") == "memory" else "")
            lines.append(f"| {i} | `{f['code']}` | {f['severity']} | {share} | {f['where']} | {f['recommendation']} |")
        lines.append("")
        for f in report["findings"]:
            evidence = ", ".join(f"{k}={v}" for k, v in f["evidence"].items())
            lines.append(f"- `{f['code']}` evidence: {evidence}")
    else:
        lines.append("No bottleneck found: the run spends its time computing.")
    lines += ["", "## Phases", "", "| phase | seconds | share |", "|---|---|---|"]
    for name, p in report["phases"].items():
        lines.append(f"| {name} | {p['seconds']:.4f} | {_pct(p['share'])} |")
    if report.get("excluded"):
        lines += ["", "Steps not blamed on the run:", ""]
        for kind, e in report["excluded"].items():
            lines.append(f"- {kind}: {e['steps']} steps, {e['seconds']:.3f} s")
    tp = report.get("throughput") or {}
    if tp:
        lines += ["", "## Throughput", ""] + [f"- {k}: {v}" for k, v in tp.items()]
    mem = report.get("memory") or {}
    if mem:
        lines += ["", "## Memory", ""] + [f"- {k}: {v}" for k, v in mem.items()]
    if len(report.get("ranks") or []) > 1:
        lines += ["", "## Ranks", "", "| rank | steps | median step | RSS peak |", "|---|---|---|---|"]
        for r in report["ranks"]:
            lines.append(f"| {r['rank']} | {r['steps']} | {r['step_median_ms']} ms | {r['rss_peak_mb']} MB |")
    window = report.get("deep_window")
    if window:
        lines += ["", "## Deep window", "", f"{window['steps']} steps; host syncs per step: "
                  f"{window['sync_calls_per_step']:.2f}", ""]
        for op in window.get("top_operators", []):
            lines.append(f"- {op['name']}: {op['calls']} calls, {op['self_cpu_ms']} ms CPU, {op['self_device_ms']} ms device")
        for site in window.get("sync_sites", []):
            lines.append(f"- sync at {site['where']}: {site['calls']} calls")
    if report.get("decisions"):
        lines += ["", "## Decisions", ""]
        for component, summary in report["decisions"].items():
            lines.append(f"- {component}: {json.dumps(summary, default=str)}")
    return "\n".join(lines) + "\n"


def console_text(report: dict[str, Any]) -> str:
    """A plain-text, one-screen ranked summary."""
    st = report["step_time"]
    lines = [f"Bottlenecks: {report['steps_measured']} steps, median {_ms(st['median'])}, p90 {_ms(st['p90'])}"]
    lines += [f" note: {note}" for note in report.get("notes") or []]
    if report["findings"]:
        for i, f in enumerate(report["findings"][:6], 1):
            lines.append(f" {i}. [{f['severity']:>6}] {f['code']:<18} {_pct(f['share']):>6}  {f['where']}")
            lines.append(f"    -> {f['recommendation']}")
    else:
        lines.append(" no bottleneck found")
    top = list(report["phases"].items())[:_TOP_PHASES]
    lines.append(" phases: " + ", ".join(f"{name} {_pct(p['share'])}" for name, p in top))
    return "\n".join(lines)


def print_console(report: dict[str, Any], use_rich: bool = True) -> None:
    """Print the summary: a rich table when ``rich`` is importable, plain text otherwise."""
    if use_rich:
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            use_rich = False
    if not use_rich:
        print(console_text(report))
        return
    st = report["step_time"]
    table = Table(title=f"Bottlenecks ({report['steps_measured']} steps, median step {_ms(st['median'])})")
    for column in ("#", "code", "severity", "share", "where", "recommendation"):
        table.add_column(column, overflow="fold")
    for i, f in enumerate(report["findings"][:6], 1):
        table.add_row(str(i), f["code"], f["severity"], _pct(f["share"]), f["where"], f["recommendation"])
    if not report["findings"]:
        table.add_row("-", "none", "-", "-", "-", "no bottleneck found")
    # a log file (not a terminal) gets wide rows instead of rich's 80-column default
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(table)
    for note in report.get("notes") or []:
        console.print(f"note: {note}", markup=False)
    top = list(report["phases"].items())[:_TOP_PHASES]
    console.print("phases: " + ", ".join(f"{name} {_pct(p['share'])}" for name, p in top))


def write_report(report: dict[str, Any], dirpath: str, filename: str, formats: Sequence[str]) -> list[str]:
    """Write ``<dirpath>/<filename>.<fmt>`` for each of ``formats`` (``json``, ``md``, ``html``), atomically.

    Returns:
        The paths written, in the order of ``formats``.
    """
    renderers = {"json": to_json, "md": to_markdown, "html": to_html}
    paths = []
    for fmt in formats:
        path = os.path.join(dirpath, f"{filename}.{fmt}")
        write_atomic(path, renderers[fmt](report))
        paths.append(path)
    return paths
