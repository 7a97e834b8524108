"""The command line's parser: one subcommand per module of ``lightning_optkit.cli``."""

from __future__ import annotations

import pytest

from lightning_optkit.cli import build_parser, precision, report, schedule
from lightning_optkit.cli.parser import COMMANDS


def test_every_subcommand_runs_its_module() -> None:
    parser = build_parser()
    assert parser.parse_args(["schedule", "-c", "a.yaml", "-c", "b.yaml"])._run is schedule.run
    assert parser.parse_args(["precision", "--no-measure"])._run is precision.run
    assert parser.parse_args(["report", "bottlenecks.json"])._run is report.run
    assert set(COMMANDS) == {"schedule", "precision", "report"}


def test_help_lists_the_subcommands_with_their_first_docstring_line(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name, module in COMMANDS.items():
        assert name in out and module.run.__doc__.splitlines()[0] in " ".join(out.split())


def test_a_subcommand_is_required(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([])
    assert info.value.code == 2
