"""``lightning-optkit report``: render a saved bottleneck JSON to the console, Markdown or HTML."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument("json", help="a bottlenecks.json written by BottleneckProfiler")
    parser.add_argument("--html", default=None, help="write the HTML report here")
    parser.add_argument("--md", default=None, help="write the Markdown report here")
    parser.add_argument("--plain", action="store_true", help="plain text even where rich is installed")


def run(args: argparse.Namespace) -> int:
    """Render a saved bottleneck JSON to the console, Markdown or HTML."""
    from lightning_optkit._files import write_atomic
    from lightning_optkit.profiling.html import to_html
    from lightning_optkit.profiling.render import print_console, to_markdown

    try:
        with open(args.json, encoding="utf-8") as handle:
            report = json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        print(f"Cannot read {args.json}: {err}", file=sys.stderr)
        return 2
    if not isinstance(report, dict) or "findings" not in report or "step_time" not in report:
        print(f"{args.json} is not a BottleneckProfiler report (no findings/step_time)", file=sys.stderr)
        return 2
    print_console(report, use_rich=not args.plain)
    if args.html:
        write_atomic(args.html, to_html(report))
        print(f"Wrote {args.html}")
    if args.md:
        write_atomic(args.md, to_markdown(report))
        print(f"Wrote {args.md}")
    return 0
