"""``precision`` subcommand of the command-line tool, and the timed reference steps behind it."""

from __future__ import annotations

from unittest import mock

from lightning_optkit.cli import main
from lightning_optkit.cli.machine import precision_report
from lightning_optkit.precision.hardware import HardwareFacts


def test_precision_command_prints_decision_and_kernels(capsys) -> None:
    assert main(["precision", "--width", "64", "--batch", "8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("AutoPrecision: ")
    assert "adamw:" in out and "sgd:" in out and "for-loop" in out


def test_precision_report_follows_the_hardware_rules() -> None:
    cuda_v100 = HardwareFacts(device_type="cuda", device_name="V100", cuda_capability=(7, 0),
                              bf16_runs=True, fp16_runs=True)
    with mock.patch("lightning_optkit.cli.machine.probe_hardware", return_value=cuda_v100):
        decision = precision_report(device="cuda", measure=False)
    assert decision.precision == "16-mixed"
    avx2 = HardwareFacts(device_type="cpu", cpu_capability="AVX2", cpu_bf16_native=False, bf16_runs=True)
    with mock.patch("lightning_optkit.cli.machine.probe_hardware", return_value=avx2):
        assert precision_report(device="cpu", measure=True).precision == "32-true"
