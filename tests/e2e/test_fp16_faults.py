"""Under fp16, inf/nan losses are skipped, counted and, when scaling collapses, left behind."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from lightning_optkit import OptKit
from lightning_optkit.schedules import build_schedule
from tests.helpers.lr_recorder import LRRecorder
from tests.helpers.models import TinyModel, make_trainer


class InfOnSomeBatches(TinyModel):
    def __init__(self, inf_batches=()) -> None:
        super().__init__()
        self.inf_batches = set(inf_batches)

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("inf") if batch_idx in self.inf_batches else loss


class OverflowsInFp16(TinyModel):
    """Activations of ~1e5 overflow fp16 (max 65504) on every step but are fine in bf16 and fp32."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.LayerNorm(32), nn.ReLU(), nn.Linear(32, 1))
        with torch.no_grad():
            self.net[0].weight.mul_(1e5)


def test_skipped_fp16_steps_are_counted_and_do_not_advance_the_schedule() -> None:
    recorder = LRRecorder()
    kit = OptKit(optimizer=False, profiler=False,
                 schedule={"warmup": 2, "decay": "linear", "count": "applied"},
                 precision={"mode": "16-mixed", "scaler": {"init_scale": 256.0, "hysteresis": 1}})
    trainer = make_trainer(max_epochs=1, callbacks=[kit, recorder])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(InfOnSomeBatches(inf_batches=(2, 3)))
    assert trainer.global_step == 8
    assert trainer.precision_plugin.skipped_steps == 2
    sched = build_schedule(warmup_steps=2, total_steps=8, decay="linear")
    applied = [0, 1, 2, 2, 2, 3, 4, 5]  # updates 2 and 3 were skipped: the schedule waited
    assert [lrs[0] for lrs in recorder.lrs()] == [1e-2 * sched(s) for s in applied]


@pytest.mark.slow
def test_collapsing_fp16_falls_back_and_training_goes_on() -> None:
    kit = OptKit(optimizer=False, profiler=False, schedule={"warmup": 2},
                 precision={"mode": "16-mixed", "scaler": {"init_scale": 2.0**4, "min_scale": 1.0},
                            "fallback_policy": {"patience": 5}, "forensics": True})
    trainer = make_trainer(max_epochs=4, callbacks=[kit])
    model = OverflowsInFp16()
    with pytest.warns(UserWarning, match=r"switching 16-mixed -> (bf16-mixed|32-true)"):
        trainer.fit(model)
    plugin = trainer.precision_plugin
    assert trainer.global_step == 32  # the run finished
    assert plugin.precision in ("bf16-mixed", "32-true")
    assert plugin.skipped_steps >= 5
    assert plugin.decision.fallbacks and plugin.decision.fallbacks[0]["from"] == "16-mixed"
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert float(trainer.callback_metrics["train_loss"]) < float("inf")
