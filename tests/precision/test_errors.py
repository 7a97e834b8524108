"""Bad input: each a clear error at construction or setup, naming the argument and value."""

from __future__ import annotations

import math
from unittest import mock

import pytest
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lightning_optkit.precision import AutoPrecision
from lightning_optkit.precision.hardware import HardwareFacts
from tests.helpers.models import TinyModel, make_trainer
from tests.helpers.precision_models import CPU_AVX2

HW = "lightning_optkit.precision.plugin.probe_hardware"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "fp16"}, r"mode='fp16' is not one of 'auto', 'bf16-mixed', '16-mixed', '32-true'"),
        ({"mode": "16"}, r"mode='16' .*did you mean '16-mixed'\?"),
        ({"mode": "bf16-true"}, r"did you mean 'bf16-mixed'\?"),
        ({"init_scale": 0.0}, r"init_scale=0.0 must be a positive finite number"),
        ({"init_scale": -4.0}, r"init_scale=-4.0"),
        ({"min_scale": -1.0}, r"min_scale=-1.0 must be a positive"),
        ({"max_scale": 0}, r"max_scale=0 must be a positive"),
        ({"min_scale": 2.0**10, "max_scale": 2.0**5}, r"min_scale=1024.0 is above max_scale=32.0"),
        ({"growth_factor": 1.0}, r"growth_factor=1.0 must be greater than 1"),
        ({"growth_factor": 0.5}, r"growth_factor=0.5 must be greater than 1"),
        ({"backoff_factor": 1.5}, r"backoff_factor=1.5 must lie in \(0, 1\)"),
        ({"backoff_factor": 0.0}, r"backoff_factor=0.0 must lie in \(0, 1\)"),
        ({"growth_interval": 0}, r"growth_interval=0 must be a positive integer"),
        ({"hysteresis": 0}, r"hysteresis=0 must be an integer >= 1"),
        ({"probe_steps": 0}, r"probe_steps=0 must be a positive integer"),
        ({"probe_warmup_steps": 0}, r"probe_warmup_steps=0 must be an integer >= 1"),
        ({"probe_rounds": 0}, r"probe_rounds=0 must be a positive integer"),
        ({"probe_margin": 1.0}, r"probe_margin=1.0 must lie in \[0, 1\)"),
        ({"probe_reject_factor": 1.0}, r"probe_reject_factor=1.0 must be greater than 1"),
        ({"fallback_patience": 0}, r"fallback_patience=0 must be a positive integer"),
        ({"fallback_skip_rate": 0.0}, r"fallback_skip_rate=0.0 must lie in \(0, 1\]"),
        ({"fallback_window": 0}, r"fallback_window=0 must be a positive integer"),
        ({"keep_fp32": ["net.(0"]}, r"keep_fp32 entry 'net.\(0' is not a module name, type or valid regular"),
        ({"keep_fp32": [3]}, r"keep_fp32 entry 3 must be a module name"),
        ({"keep_fp32": [int]}, r"keep_fp32 entry <class 'int'> is a class but not a torch.nn.Module"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AutoPrecision(**kwargs)


def test_non_finite_scale_is_rejected():
    with pytest.raises(ValueError, match="init_scale=nan"):
        AutoPrecision(init_scale=math.nan)


def _setup(plugin, facts=CPU_AVX2, model=None):
    trainer = make_trainer(plugins=[plugin], max_steps=1, max_epochs=None)
    with mock.patch(HW, return_value=facts):
        trainer.fit(model or TinyModel())


def test_keep_fp32_entry_matching_nothing_fails_at_setup():
    with pytest.raises(ValueError, match=r"keep_fp32 entry 'encoder' matches no module of TinyModel; "
                                         r"module names are e.g. 'net', 'net.0'"):
        _setup(AutoPrecision(keep_fp32=["net.0", "encoder"]))


def test_fp16_on_hardware_that_cannot_run_it_fails_at_setup():
    no_fp16 = HardwareFacts(device_type="cpu", device_name="no-fp16", cpu_capability="DEFAULT", fp16_runs=False)
    with pytest.raises(ValueError, match=r"mode='16-mixed' cannot run on cpu \(no-fp16\)"):
        _setup(AutoPrecision("16-mixed"), facts=no_fp16)


def test_slow_fixed_precision_warns_and_trains():
    with pytest.warns(UserWarning, match=r"mode='bf16-mixed' on this CPU \(AVX2\): bf16 is emulated"):
        _setup(AutoPrecision("bf16-mixed"))


class LBFGSModel(TinyModel):
    def configure_optimizers(self):  # type: ignore[override]
        return torch.optim.LBFGS(self.parameters(), lr=0.1)


def test_lbfgs_with_fp16_fails_at_setup():
    with pytest.raises(MisconfigurationException, match="cannot scale the loss of LBFGS"):
        _setup(AutoPrecision("16-mixed"), model=LBFGSModel())


def test_precision_together_with_the_plugin_is_refused_by_lightning():
    with pytest.raises(ValueError, match="precision"):
        make_trainer(plugins=[AutoPrecision()], precision="bf16-mixed")


def test_fixed_mode_is_visible_before_setup():
    plugin = AutoPrecision("16-mixed", init_scale=128.0)
    assert plugin.precision == "16-mixed"
    assert isinstance(plugin.scaler, torch.amp.GradScaler) and plugin.scaler.get_scale() == 128.0
    assert make_trainer(plugins=[AutoPrecision("bf16-mixed")]).precision == "bf16-mixed"
    assert AutoPrecision().precision == "32-true" and AutoPrecision().scaler is None


def test_initial_scale_outside_the_bounds_warns_and_is_clamped():
    with pytest.warns(UserWarning, match=r"init_scale=65536.0 lies outside \[min_scale=1.0, max_scale=1024.0\]"):
        plugin = AutoPrecision("16-mixed", max_scale=1024.0)
    assert plugin.scaler.get_scale() == 1024.0
