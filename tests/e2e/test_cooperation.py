"""The components in one Trainer: searches do not overlap and are not blamed on the run."""

from __future__ import annotations

from unittest import mock

import pytest
import torch

from lightning_optkit import OptKit
from lightning_optkit._trainer import run_notes
from lightning_optkit.precision.hardware import HardwareFacts
from tests.helpers.lr_recorder import LRRecorder
from tests.helpers.models import TinyModel, make_trainer

AMX_CPU = HardwareFacts(device_type="cpu", device_name="cpu", cpu_capability="AVX512",
                        cpu_bf16_native=True, cpu_amx=True, bf16_runs=True, fp16_runs=True)


class NoOptimizer(TinyModel):
    def configure_optimizers(self):
        return None


def test_race_then_probe_each_in_its_own_phase(tmp_path) -> None:
    """The optimizer race runs first, in fp32; the precision probe starts on the real steps after it."""
    recorder = LRRecorder()
    kit = OptKit(
        optimizer={"mode": "race", "budget": 20, "max_candidates": 2, "kernel": "for-loop"},
        schedule={"warmup": "5%", "min_lr_ratio": 0.1},
        precision={"mode": "auto"},
        profiler={"dirpath": str(tmp_path), "console": False},
    )
    # deterministic=False: the probe times its candidates (a deterministic run decides by rule)
    trainer = make_trainer(max_epochs=25, callbacks=[kit, recorder], default_root_dir=tmp_path, deterministic=False)
    with mock.patch("lightning_optkit.plugins.auto_precision.plugin.probe_hardware", return_value=AMX_CPU):
        trainer.fit(NoOptimizer())
    decisions = run_notes(trainer).decisions
    assert decisions["optimizer"]["mode"] == "race" and decisions["optimizer"]["race"]["winner"]
    assert decisions["precision"]["source"] == "probe"
    assert set(decisions["precision"]["measurements"]) == {"bf16-mixed", "32-true"}
    report = kit.parts["profiler"].report
    probe = report["excluded"]["precision_probe"]
    assert probe["steps"] >= 10  # the probe's steps are reported apart, not blamed on the run
    race = report["excluded"]["optimizer_race"]
    assert race["steps"] == decisions["optimizer"]["overhead_steps"] > 0
    assert race["seconds"] == pytest.approx(decisions["optimizer"]["overhead_seconds"], abs=1e-6)
    in_loop = [e["steps"] for k, e in report["excluded"].items() if k != "optimizer_race"]
    assert report["steps_measured"] + sum(in_loop) == 200
    # the schedule's peak is the race winner's LR, and every update followed the schedule
    peak = decisions["schedule"]["groups"][0]["peak_lr"]
    assert peak == decisions["optimizer"]["lr"]
    assert max(lrs[0] for lrs in recorder.lrs()) == peak
    assert isinstance(trainer.optimizers[0], torch.optim.Optimizer)
