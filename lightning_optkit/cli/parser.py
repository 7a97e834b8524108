"""The ``lightning-optkit`` command line (``python -m lightning_optkit``).

Subcommands:
    schedule   preview the LR schedule of a LightningCLI config (table and PNG) without training.
    precision  show what AutoPrecision and the optimizer kernel choice would be on this machine.
    report     render a saved bottleneck JSON to the console, Markdown or HTML.

Each subcommand is a module of this package with ``add_arguments(parser)`` and ``run(args) -> int``
(the first line of ``run``'s docstring is its ``--help`` line); heavy imports wait inside ``run``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lightning_optkit.cli import precision, report, schedule

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = {"schedule": schedule, "precision": precision, "report": report}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog="lightning-optkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        doc = (command.run.__doc__ or "").strip().splitlines()
        sub_parser = sub.add_parser(name, help=doc[0] if doc else None)
        command.add_arguments(sub_parser)
        sub_parser.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    return int(args._run(args))
