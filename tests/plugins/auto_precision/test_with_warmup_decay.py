"""Skipped fp16 steps do not advance a WarmupDecay schedule that counts only applied updates."""

from __future__ import annotations

from unittest import mock

import pytest

from lightning_optkit import WarmupDecay
from lightning_optkit.precision import AutoPrecision, ScalerConfig
from lightning_optkit.schedules import build_schedule
from tests.helpers.lr_recorder import LRRecorder
from tests.helpers.models import make_trainer
from tests.helpers.precision_models import CPU_AVX2, InfModel


def test_applied_only_schedule_holds_on_skipped_steps():
    plugin = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=256.0), fallback=False)
    schedule = WarmupDecay(warmup=4, total=12, decay="linear", count="applied", verbose=False)
    recorder = LRRecorder()
    trainer = make_trainer(plugins=[plugin], callbacks=[schedule, recorder], max_steps=8, max_epochs=None)
    with mock.patch("lightning_optkit.plugins.auto_precision.plugin.probe_hardware", return_value=CPU_AVX2):
        trainer.fit(InfModel(bad_steps=[2, 3], fused=False, lr=0.01))
    assert plugin.skipped_steps == 2
    curve = build_schedule(warmup_steps=4, total_steps=12, decay="linear")
    # steps 2 and 3 are skipped: step 3 repeats step 2's LR and from step 4 on the schedule lags by 2
    applied = [0, 1, 2, 2, 2, 3, 4, 5]
    assert [lrs[0] for lrs in recorder.lrs()] == pytest.approx([0.01 * curve(a) for a in applied])
