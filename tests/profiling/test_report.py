"""Report building, rank packing for DDP, renderers, deep-window summaries and atomic files."""

from __future__ import annotations

import builtins
import json
from types import SimpleNamespace

import pytest

from lightning_optkit import _files as files
from lightning_optkit.profiling.deep import summarise_window, user_frame
from lightning_optkit.profiling.html import svg_chart, to_html
from lightning_optkit.profiling.measurements import Measurements, RankSummary
from lightning_optkit.profiling.phases import CATEGORIES
from lightning_optkit.profiling.render import console_text, print_console, to_json, to_markdown, write_report
from lightning_optkit.profiling.report import build_report, pack_rank, packed_size, unpack_rank
from lightning_optkit.profiling.rules import diagnose


def _measurements() -> Measurements:
    timeline = [[0.001 * (c + 1) for c in range(len(CATEGORIES))] for _ in range(3)]
    ranks = [RankSummary(rank=r, steps=10, wall_seconds=1.0 + r, step_median=0.1, category_seconds=[0.1] * 12,
                         top_phases=[("callback:Slow.on_train_batch_end", 0.5)], rss_peak=2**30,
                         timeline=timeline, steps_per_point=2) for r in range(2)]
    return Measurements(steps=10, wall_seconds=1.0, step_median=0.1, step_p90=0.12, step_max=0.2,
                        phase_seconds={"forward": 0.3, "backward": 0.2, "data_fetch": 0.5},
                        excluded_seconds={"optimizer_race": 0.4}, excluded_steps={"optimizer_race": 4},
                        ranks=ranks)


def _report() -> dict:
    m = _measurements()
    return build_report(m, diagnose(m), decisions={"AutoOptimizer": {"name": "adamw"}},
                        throughput={"samples_per_second": 1280.0}, memory={"peak_mb": 512.0},
                        timeline=[[0.01] * 12, [0.02] * 12], steps_per_point=5)


def test_report_schema_and_values() -> None:
    report = _report()
    assert report["version"] == 1 and report["steps_measured"] == 10
    assert report["step_time"] == {"median": 0.1, "p90": 0.12, "max": 0.2}
    assert list(report["phases"]) == ["data_fetch", "forward", "backward"]
    assert report["phases"]["data_fetch"] == {"seconds": 0.5, "share": 0.5}
    assert report["excluded"]["optimizer_race"]["steps"] == 4
    assert report["decisions"] == {"AutoOptimizer": {"name": "adamw"}}
    finding = report["findings"][0]
    assert list(finding)[:6] == ["code", "severity", "share", "evidence", "where", "recommendation"]
    assert finding["code"] == "dataloader" and finding["severity"] == "high"
    assert [r["rank"] for r in report["ranks"]] == [0, 1]
    json.loads(to_json(report))


def test_pack_round_trip_has_fixed_size() -> None:
    summary = _measurements().ranks[1]
    vector = pack_rank(summary, timeline_points=8)
    assert len(vector) == packed_size(8)
    assert len(pack_rank(RankSummary(), timeline_points=8)) == packed_size(8)
    back = unpack_rank(vector, ["callback:Slow.on_train_batch_end"])
    assert back.rank == 1 and back.steps == 10 and back.wall_seconds == 2.0
    assert back.top_phases == [("callback:Slow.on_train_batch_end", 0.5)]
    assert back.timeline == summary.timeline and back.steps_per_point == 2
    assert unpack_rank(vector, []).top_phases[0][0].startswith("phase#")


def test_markdown_and_console() -> None:
    report = _report()
    md = to_markdown(report)
    assert md.startswith("# Bottleneck report")
    assert "| 1 | `dataloader` | high | 50.0% |" in md
    assert "## Ranks" in md and "AutoOptimizer" in md and "optimizer_race: 4 steps" in md
    text = console_text(report)
    assert "1. [  high] dataloader" in text
    assert len(text.splitlines()) < 25


def test_console_without_rich(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real_import = builtins.__import__

    def no_rich(name: str, *args, **kwargs):
        if name.startswith("rich"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rich)
    print_console(_report())
    assert "Bottlenecks: 10 steps" in capsys.readouterr().out


def test_console_with_rich(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("rich")
    print_console(_report())
    out = capsys.readouterr().out
    assert "dataloader" in out and "phases:" in out


def test_html_is_self_contained_with_a_chart_per_rank() -> None:
    page = to_html(_report())
    assert page.count("<svg") == 3  # rank 0's run chart + one per rank
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "dataloader" in page
    assert len(page) < 200_000
    assert "no steps measured" in svg_chart([], list(CATEGORIES), 1, "empty")


def test_deep_window_summary_counts_item_calls_with_source() -> None:
    def event(name: str, cpu: float, stack: list[str] | None = None) -> SimpleNamespace:
        return SimpleNamespace(name=name, self_cpu_time_total=cpu, self_device_time_total=0.0, stack=stack or [])

    user = "/home/me/model.py(42): training_step"
    events = [event("aten::addmm", 900.0)] * 4 + [
        event("aten::item", 5.0, ["/site-packages/torch/_tensor.py(1): item", user]),
        event("aten::_local_scalar_dense", 3.0),
        event("aten::item", 5.0, [user]),
    ]
    summary = summarise_window(events, steps=2)
    assert summary["sync_calls"] == 2 and summary["sync_calls_per_step"] == 1.0
    assert summary["sync_sites"] == [{"where": user, "calls": 2}]
    assert summary["top_operators"][0] == {"name": "aten::addmm", "calls": 4, "self_cpu_ms": 3.6,
                                           "self_device_ms": 0.0}
    assert user_frame(["/x/site-packages/lightning/a.py(1): f"]) is None


def test_atomic_write_and_writable_check(tmp_path) -> None:
    path = tmp_path / "sub" / "r.json"
    files.write_atomic(str(path), "{}")
    assert path.read_text() == "{}"
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]
    assert files.check_writable(str(tmp_path / "new")) is None
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert files.check_writable(str(blocker / "below")) is not None


def test_report_files_in_the_formats_asked(tmp_path) -> None:
    report = _report()
    paths = write_report(report, str(tmp_path), "run", ["md", "json"])
    assert paths == [str(tmp_path / "run.md"), str(tmp_path / "run.json")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json", "run.md"]
    assert json.loads((tmp_path / "run.json").read_text()) == json.loads(to_json(report))
    assert (tmp_path / "run.md").read_text() == to_markdown(report)
    write_report(report, str(tmp_path), "run", ["html"])
    assert (tmp_path / "run.html").read_text() == to_html(report)


def test_directory_nobody_can_create_is_reported(tmp_path) -> None:
    # a directory below a regular file cannot be created by any user, root included
    blocker = tmp_path / "report.json"
    blocker.write_text("x")
    problem = files.check_writable(str(blocker / "reports"))
    assert problem is not None and problem.startswith("NotADirectoryError: ")
    assert blocker.read_text() == "x" and [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_console_table_is_not_squeezed_when_the_output_is_not_a_terminal(capsys) -> None:
    pytest.importorskip("rich")
    from lightning_optkit.profiling import render

    finding = {"code": "dataloader", "severity": "high", "share": 0.5, "where": "DataLoader(num_workers=0)",
               "recommendation": "Data loading blocks the training loop: set DataLoader(num_workers=N, "
                                 "persistent_workers=True) in your LightningDataModule."}
    report = {"steps_measured": 10, "step_time": {"median": 0.01}, "findings": [finding], "phases": {}}
    render.print_console(report)
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) > 80
    assert "persistent_workers=True) in your LightningDataModule." in out
