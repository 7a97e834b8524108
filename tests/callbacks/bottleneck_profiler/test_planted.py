"""Attribution on planted causes the rules were not written for: a slow logger backend, a slow forward
hook on a submodule, a tiny model at batch size 1; and severities that follow the share of time."""

from __future__ import annotations

import time
from typing import Any

import pytest
from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from lightning_optkit import BottleneckProfiler
from lightning_optkit.profiling.findings import THRESHOLDS, severity_for
from lightning_optkit.profiling.measurements import Measurements
from lightning_optkit.profiling.rules import rule_small_steps
from tests.helpers.models import TinyModel, make_trainer

PLANTED_MS = 3.0


def _busy(ms: float) -> None:
    end = time.perf_counter() + ms / 1e3
    while time.perf_counter() < end:
        pass


class RemoteTracker(Logger):
    """A tracker whose every ``log_metrics`` waits on the network."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    @property
    def name(self) -> str:
        return "remote"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, *args: Any, **kwargs: Any) -> None:
        pass

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.calls += 1
        _busy(PLANTED_MS)


def _fit(tmp_path, model: TinyModel, **trainer_kwargs: Any) -> dict[str, Any]:
    profiler = BottleneckProfiler(dirpath=str(tmp_path), console=False, formats=["json"])
    make_trainer(callbacks=[profiler], **trainer_kwargs).fit(model)
    assert profiler.report is not None
    return profiler.report


def test_a_slow_logger_backend_is_logging_with_its_real_share(tmp_path) -> None:
    tracker = RemoteTracker()
    report = _fit(tmp_path, TinyModel(n_loader=8 * 24), logger=tracker, log_every_n_steps=1)
    phase = report["phases"]["logger:RemoteTracker.log_metrics"]
    planted = PLANTED_MS / 1e3 * report["steps_measured"]  # one call per measured step at least
    assert tracker.calls >= 24 and phase["seconds"] >= 0.9 * planted
    top = report["findings"][0]
    assert top["code"] == "logging" and top["severity"] == "high"
    assert top["where"].startswith("RemoteTracker.log_metrics (test_planted.py:")
    assert top["evidence"]["backend"] == "RemoteTracker.log_metrics"
    assert "log_every_n_steps" in top["recommendation"]
    # its share is the backend's time plus self.log's: at least the planted time's share
    assert top["share"] >= phase["share"] >= 0.9 * planted / report["wall_seconds"]
    assert "log_metrics" not in vars(tracker)  # the wrapper is gone after the fit


def test_a_slow_forward_hook_is_named_not_logging(tmp_path) -> None:
    model = TinyModel(n_loader=8 * 24)
    calls = []

    def inspect_activations(module: Any, inputs: Any, output: Any) -> None:
        calls.append(1)
        _busy(PLANTED_MS)

    model.net[0].register_forward_hook(inspect_activations)
    report = _fit(tmp_path, model)
    phase = report["phases"]["hook:net.0.forward_hook"]
    assert phase["seconds"] >= 0.9 * PLANTED_MS / 1e3 * report["steps_measured"]
    top = report["findings"][0]
    assert top["code"] == "callback" and top["severity"] == "high"
    assert top["where"].startswith("forward hook on submodule net.0 (test_planted.py:")
    assert "handle.remove()" in top["recommendation"]
    logging = [f for f in report["findings"] if f["code"] == "logging"]
    assert all(f["share"] < phase["share"] / 2 for f in logging)
    assert report["phases"]["forward"]["seconds"] < phase["seconds"]  # the hook's time left forward
    assert list(model.net[0]._forward_hooks.values()) == [inspect_activations]  # restored
    assert len(calls) == 24


def test_a_compiled_model_keeps_its_hooks_unwrapped(tmp_path) -> None:
    from lightning_optkit.callbacks.bottleneck_profiler._timed_calls import TimedModuleHooks

    model = TinyModel()
    model.net[0].register_forward_hook(lambda *args: None)
    model._compiler_ctx = {"compiler": "dynamo"}  # what Lightning sets on a torch.compile'd module
    hooks = TimedModuleHooks(accountant=None)  # type: ignore[arg-type]
    hooks.install(model)
    assert not hasattr(next(iter(model.net[0]._forward_hooks.values())), "__optkit_timed__")


def test_severity_follows_the_share_of_time() -> None:
    for code in THRESHOLDS:
        if code.startswith("memory_"):
            continue
        assert severity_for(code, 0.48) == "high", code
        if THRESHOLDS[code].low <= 0.25:  # a code with a higher low threshold finds nothing there
            assert severity_for(code, 0.25) in ("medium", "high"), code
    assert severity_for("small_steps", 0.30) is None  # below its own low threshold: no finding
    assert severity_for("memory_pressure", 0.48) is None  # shares of memory keep their thresholds


def test_small_steps_at_48_percent_is_high() -> None:
    """A tiny model at batch size 1: half the step is the loop's fixed cost."""
    m = Measurements(steps=100, wall_seconds=0.1, step_median=0.001, step_p90=0.0012, step_max=0.002,
                     batch_size=1, log_calls=100,
                     phase_seconds={"forward": 0.025, "backward": 0.02, "data_fetch": 0.007, "optimizer_step": 0.005,
                                    "other": 0.023, "logging": 0.02})
    finding = rule_small_steps(m)
    assert finding is not None and finding.share == pytest.approx(0.48) and finding.severity == "high"
