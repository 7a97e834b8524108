"""The report's summaries from a hand-made accountant and hand-made measurements (no Trainer)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lightning_optkit.profiling.accounting import PhaseAccountant
from lightning_optkit.profiling.measurements import Measurements
from lightning_optkit.profiling.phases import CATEGORIES, ActionClassifier
from lightning_optkit.profiling.summaries import device_seconds, memory_summary, share_metrics, throughput_summary

FETCH = "[_TrainingEpochLoop].train_dataloader_next"
FORWARD = "[Strategy]SingleDeviceStrategy.training_step"
BACKWARD = "[Strategy]SingleDeviceStrategy.backward"
MB = 2**20


class Clock:
    """A clock advanced by hand, in nanoseconds."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def _accountant(steps: int = 5) -> PhaseAccountant:
    """``steps`` steps of fetch 250 ns, forward 500 ns, backward 1000 ns; the first is a warm-up step."""
    clock = Clock()
    kinds = iter(["warmup"])
    acct = PhaseAccountant(ActionClassifier(), step_kind=lambda: next(kinds, None), clock=clock)
    for _ in range(steps):
        for name, ns in ((FETCH, 250), ("run_training_batch", 0), (FORWARD, 500), (BACKWARD, 1000)):
            acct.start(name)
            clock.now += ns
            if name != "run_training_batch":
                acct.stop(name)
        acct.stop("run_training_batch")
    acct.finish()
    return acct


def test_share_metrics_of_an_accountant_leave_the_excluded_steps_out() -> None:
    acct = _accountant()
    assert acct.steps == 4 and acct.excluded_steps == {"warmup": 1}
    seconds = acct.category_seconds()
    assert seconds[CATEGORIES.index("excluded")] == pytest.approx(1750e-9, rel=1e-12)
    metrics = share_metrics(seconds)
    assert set(metrics) == {f"bottleneck/{c}" for c in CATEGORIES if c != "excluded"}
    assert metrics["bottleneck/data_fetch"] == pytest.approx(1 / 7, rel=1e-12)
    assert metrics["bottleneck/forward"] == pytest.approx(2 / 7, rel=1e-12)
    assert metrics["bottleneck/backward"] == pytest.approx(4 / 7, rel=1e-12)
    assert sum(metrics.values()) == pytest.approx(1.0, rel=1e-12)
    assert metrics["bottleneck/optimizer_step"] == metrics["bottleneck/other"] == 0.0


def test_share_metrics_of_nothing_measured_are_zero() -> None:
    assert share_metrics([0.0] * len(CATEGORIES)) == {f"bottleneck/{c}": 0.0 for c in CATEGORIES if c != "excluded"}


def test_device_seconds_fall_back_to_the_host_phases() -> None:
    acct = _accountant()
    host = device_seconds(None, acct.phase_seconds())
    assert host == pytest.approx({"forward": 4 * 500e-9, "backward": 4 * 1000e-9}, rel=1e-12)
    # a device timer's totals win, its empty slots dropped
    timer = {"forward": 0.5, "backward": 0.0, "between": 0.125, "optimizer_step": 0.25}
    assert device_seconds(timer, acct.phase_seconds()) == {"forward": 0.5, "between": 0.125, "optimizer_step": 0.25}
    assert device_seconds(None, {"data_fetch": 1.0, "optimizer_step": 0.0}) == {}


def test_throughput_with_batch_size_flops_and_peak() -> None:
    m = Measurements(steps=10, wall_seconds=2.0, step_median=0.25)
    assert throughput_summary(m, batch_size=8, flops=10**9, peak=4e10) == {
        "steps_per_second": 5.0,
        "batch_size": 8,
        "samples_per_second": 40.0,
        "flops_per_step": 1e9,
        "flops_per_second": 4e9,
        "flop_utilisation": 0.1,
    }
    # no known peak: the utilisation is unknown, the achieved FLOP/s still reported
    assert throughput_summary(m, batch_size=8, flops=10**9)["flop_utilisation"] is None


def test_throughput_without_steps_or_facts() -> None:
    assert throughput_summary(Measurements()) == {"steps_per_second": None, "batch_size": None}
    m = Measurements(steps=3, wall_seconds=1.5, step_median=0.5)
    assert throughput_summary(m, flops=0) == {"steps_per_second": 2.0, "batch_size": None}


def test_memory_of_the_process_and_of_the_cuda_allocator() -> None:
    samples = [(0.0, 100 * MB), (25.0, 160 * MB), (50.0, 150 * MB)]
    assert memory_summary(samples, peak=200 * MB) == {
        "kind": "process_rss", "start_mb": 100.0, "end_mb": 150.0, "peak_mb": 200.0,
    }
    alloc = {"allocated": 150 * MB, "allocated_peak": 200 * MB, "reserved": 256 * MB, "reserved_peak": 512 * MB,
             "alloc_retries": 3}
    assert memory_summary(samples, peak=200 * MB, alloc=alloc) == {
        "kind": "cuda_allocated", "start_mb": 100.0, "end_mb": 150.0, "peak_mb": 200.0,
        "reserved_peak_mb": 512.0, "alloc_retries": 3,
    }
    assert memory_summary([]) == {"kind": "process_rss", "start_mb": None, "end_mb": None, "peak_mb": None}


def test_the_pure_core_imports_no_lightning() -> None:
    code = (
        "import json, pkgutil, sys, importlib, lightning_optkit.profiling as p\n"
        "for info in pkgutil.iter_modules(p.__path__):\n"
        "    importlib.import_module(f'lightning_optkit.profiling.{info.name}')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning',"
        " 'lightning_fabric') or m.startswith('lightning_optkit.callbacks'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
