"""Real GPU runs of the plugin (``@pytest.mark.gpu``, skipped without CUDA); the one-step-lagged
counter read of the accelerator path is tested on CPU tensors in ``tests/precision/test_scaler.py``."""

from __future__ import annotations

import pytest
import torch

from lightning_optkit.precision import AutoPrecision, ScalerConfig
from tests.helpers.models import TinyModel, make_trainer
from tests.helpers.precision_models import InfModel


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
    plugin = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=256.0, hysteresis=1))
    trainer = make_trainer(accelerator="gpu", deterministic=False, plugins=[plugin], max_steps=4,
                           max_epochs=None, gradient_clip_val=0.5)
    trainer.fit(InfModel(bad_steps=[1], fused=True))
    assert plugin.skipped_steps == 1 and plugin.scaler.get_scale() == 128.0
