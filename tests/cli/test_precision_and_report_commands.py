"""``precision`` and ``report`` subcommands of the command-line tool."""

from __future__ import annotations

import json
from unittest import mock

from lightning_optkit import BottleneckProfiler
from lightning_optkit.cli import main
from lightning_optkit.cli_machine import precision_report
from lightning_optkit.precision.hardware import HardwareFacts
from tests.helpers.models import TinyModel, make_trainer


def test_precision_command_prints_decision_and_kernels(capsys) -> None:
    assert main(["precision", "--width", "64", "--batch", "8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("AutoPrecision: ")
    assert "adamw:" in out and "sgd:" in out and "for-loop" in out


def test_precision_report_follows_the_hardware_rules() -> None:
    cuda_v100 = HardwareFacts(device_type="cuda", device_name="V100", cuda_capability=(7, 0),
                              bf16_runs=True, fp16_runs=True)
    with mock.patch("lightning_optkit.cli_machine.probe_hardware", return_value=cuda_v100):
        decision = precision_report(device="cuda", measure=False)
    assert decision.precision == "16-mixed"
    avx2 = HardwareFacts(device_type="cpu", cpu_capability="AVX2", cpu_bf16_native=False, bf16_runs=True)
    with mock.patch("lightning_optkit.cli_machine.probe_hardware", return_value=avx2):
        assert precision_report(device="cpu", measure=True).precision == "32-true"


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
