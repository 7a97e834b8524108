"""Accelerator code paths: the one-step-lagged counter read (on CPU tensors), and real GPU runs
(``@pytest.mark.gpu``, skipped without CUDA)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lightning_optkit.precision import AutoPrecision, _steps
from lightning_optkit.precision.ladder import FallbackPolicy
from lightning_optkit.precision.scaler import DynamicGradScaler
from tests.helpers.models import TinyModel, make_trainer
from tests.helpers.precision_models import InfModel


def _overflowing_step(scaler: DynamicGradScaler) -> None:
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler.scale(model(torch.ones(1, 2)).sum() * math.inf).backward()
    scaler.step(opt)
    scaler.update()


def test_accelerator_monitor_reads_the_previous_steps_counters():
    scaler = DynamicGradScaler("cpu", init_scale=1.0, hysteresis=1, min_scale=1.0)
    seen: list[dict] = []
    policy = FallbackPolicy(patience=1)
    plugin = SimpleNamespace(scaler=scaler, device_type="cuda", forensics=False, fallback=True,
                             _lag_snapshot=None, policy=SimpleNamespace(check=lambda s: seen.append(dict(s))))
    _overflowing_step(scaler)
    _steps.monitor(plugin, trainer=None)
    assert seen == []  # nothing older than this step yet: no read at all
    _overflowing_step(scaler)
    _steps.monitor(plugin, trainer=None)
    assert [s["skipped_steps"] for s in seen] == [1]  # the previous step's snapshot
    assert policy.check(seen[0]) is not None  # which already triggers the ladder at patience 1


@pytest.mark.gpu
def test_auto_on_the_gpu_follows_its_capability():
    plugin = AutoPrecision(probe=False)
    trainer = make_trainer(accelerator="gpu", deterministic=False, plugins=[plugin], max_steps=3, max_epochs=None)
    trainer.fit(TinyModel())
    cap = torch.cuda.get_device_capability()
    expected = "bf16-mixed" if cap >= (8, 0) else "16-mixed" if cap >= (7, 0) else "32-true"
    assert plugin.decision.precision == expected


@pytest.mark.gpu
def test_fp16_scaler_on_the_gpu_counts_skips_and_clips_fused():
    plugin = AutoPrecision("16-mixed", init_scale=256.0, hysteresis=1)
    trainer = make_trainer(accelerator="gpu", deterministic=False, plugins=[plugin], max_steps=4,
                           max_epochs=None, gradient_clip_val=0.5)
    trainer.fit(InfModel(bad_steps=[1], fused=True))
    assert plugin.skipped_steps == 1 and plugin.scaler.get_scale() == 128.0
