"""``report`` subcommand of the command-line tool."""

from __future__ import annotations

import json

from lightning_optkit import BottleneckProfiler
from lightning_optkit.cli import main
from tests.helpers.models import TinyModel, make_trainer


def test_report_command_renders_a_saved_report(tmp_path, capsys) -> None:
    profiler = BottleneckProfiler(dirpath=str(tmp_path), console=False)
    make_trainer(max_epochs=2, callbacks=[profiler]).fit(TinyModel())
    saved = tmp_path / "bottlenecks.json"
    assert json.loads(saved.read_text())["version"]
    html, md = tmp_path / "again.html", tmp_path / "again.md"
    assert main(["report", str(saved), "--plain", "--html", str(html), "--md", str(md)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Bottlenecks:") and "phases:" in out
    assert html.read_text().lstrip().lower().startswith("<!doctype html")
    assert "Bottleneck" in md.read_text()


def test_report_command_rejects_other_json(tmp_path, capsys) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    assert main(["report", str(other)]) == 2
    assert main(["report", str(tmp_path / "missing.json")]) == 2
