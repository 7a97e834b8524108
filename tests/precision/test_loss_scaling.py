"""LossScaling without a Trainer: the scaled step's order, calibration, forensics and saved state."""

from __future__ import annotations

import subprocess
import sys

import torch
from torch import nn

from lightning_optkit.precision.loss_scaling import LossScaling
from lightning_optkit.precision.options import ScalerConfig
from tests.helpers.precision_models import Amplify


def _setup(overflow: bool = False):
    torch.manual_seed(0)
    middle = Amplify() if overflow else nn.Identity()  # Amplify overflows fp16 in the forward pass
    model = nn.Sequential(nn.Linear(4, 8), middle, nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    return model, opt, x, y


def _closure(scaling: LossScaling, model, opt, x, y, calls: list[str]):
    def closure():
        calls.append("closure")
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.float16):
            loss = nn.functional.mse_loss(model(x), y)
        scaling.scaler.scale(loss).backward()
        return loss

    return closure


def test_step_order_and_true_gradients_for_the_hooks():
    model, opt, x, y = _setup()
    scaling = LossScaling(ScalerConfig(init_scale=256.0))
    scaling.use("cpu")
    calls: list[str] = []
    grads: list[float] = []

    def hooks():
        calls.append("hooks")
        grads.append(float(model[0].weight.grad.abs().max()))

    scaling.step(opt, _closure(scaling, model, opt, x, y, calls), hooks, automatic=True,
                 named_params=model.named_parameters, global_step=0)
    assert calls == ["closure", "hooks"]
    assert grads[0] < 256.0  # unscaled before the hooks ran
    assert scaling.scaler.stats()["steps"] == 1 and scaling.skipped_steps == 0


def test_calibration_lowers_the_scale_until_the_first_batch_is_finite():
    model, opt, x, y = _setup()
    notes: list[str] = []
    scaling = LossScaling(ScalerConfig(init_scale=2.0**24, max_scale=2.0**24), calibrate=True, note=notes.append)
    scaling.use("cpu")
    calls: list[str] = []
    scaling.step(opt, _closure(scaling, model, opt, x, y, calls), lambda: None, automatic=True,
                 named_params=model.named_parameters, global_step=0)
    assert scaling.calibration["reruns"] >= 1 and scaling.calibration["scale"] < 2.0**24
    assert calls.count("closure") == 1 + scaling.calibration["reruns"]
    assert notes and notes[0].startswith("loss scale calibrated on the first batch: 1.67772e+07 -> ")
    assert scaling.skipped_steps == 0 and not scaling.calibrate_pending


def test_forensics_arm_after_a_skip_and_name_the_module():
    model, opt, x, y = _setup(overflow=True)
    warnings: list[str] = []
    scaling = LossScaling(ScalerConfig(init_scale=256.0), forensics=True, warn=warnings.append)
    scaling.use("cpu")
    for step in range(2):
        scaling.step(opt, _closure(scaling, model, opt, x, y, []), lambda: None, automatic=True,
                     named_params=model.named_parameters, global_step=step)
        assert scaling.observe("cpu", model)["skipped_steps"] == step + 1
    [report] = scaling.overflows.reports
    assert report["forward_module"] == "1" and report["step"] == 1
    assert warnings and "forward output of '1' (Amplify) is non-finite" in warnings[0]


def test_saved_state_waits_for_the_scaler_and_an_unused_guess_is_dropped():
    scaling = LossScaling(ScalerConfig(init_scale=256.0), calibrate=True)
    scaling.load_state({"scale": 8.0, "skipped_steps": 3})
    assert scaling.skipped_steps == 3 and scaling.state() == {"scale": 8.0, "skipped_steps": 3}
    assert not scaling.calibrate_pending  # a restored scale is already calibrated
    guessed = scaling.use("cpu")  # built for the device guessed before setup, never used
    assert scaling.drop_unused("xpu") and scaling.scaler is None and guessed._scale is None
    assert scaling.use("cpu").get_scale() == 8.0 and scaling.skipped_steps == 3
    assert not scaling.drop_unused("cpu")


def test_counter_reads_are_free_on_cpu_and_sparse_with_fused_kernels_elsewhere():
    scaling = LossScaling()
    assert scaling.read_due("cpu", 3, every=50) and scaling.read_due("cuda", 3, every=50)
    scaling._fused_step = True
    assert not scaling.read_due("cuda", 3, every=50) and scaling.read_due("cuda", 49, every=50)
    assert scaling.read_due("cpu", 3, every=50)


def test_the_core_imports_no_lightning():
    code = ("import sys, lightning_optkit.precision, lightning_optkit.precision.loss_scaling;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
