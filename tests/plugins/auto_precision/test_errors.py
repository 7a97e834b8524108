"""Bad input: each a clear error at construction or setup, naming the argument and value."""

from __future__ import annotations

import math
from unittest import mock

import pytest
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lightning_optkit.precision import AutoPrecision, ScalerConfig
from lightning_optkit.precision.hardware import HardwareFacts
from tests.helpers.models import TinyModel, make_trainer
from tests.helpers.precision_models import CPU_AVX2

HW = "lightning_optkit.plugins.auto_precision.plugin.probe_hardware"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "fp16"}, r"mode='fp16' is not one of 'auto', 'bf16-mixed', '16-mixed', '32-true'; did you mean mode='16-mixed'\?"),
        ({"mode": "16"}, r"mode='16' .*did you mean mode='16-mixed'\?"),
        ({"mode": "bf16-true"}, r"did you mean mode='bf16-mixed'\?"),
        ({"scaler": {"init_scale": 0.0}},
         r"scaler.init_scale=0.0 is not allowed: expected a finite number in \(0.0, inf\)"),
        ({"scaler": {"init_scale": -4.0}}, r"scaler.init_scale=-4.0"),
        ({"scaler": {"init_scale": "big"}}, r"scaler.init_scale='big' is not allowed: expected a number"),
        ({"scaler": {"min_scale": -1.0}}, r"scaler.min_scale=-1.0 is not allowed"),
        ({"scaler": {"max_scale": 0}}, r"scaler.max_scale=0 is not allowed"),
        ({"scaler": {"min_scale": 2.0**10, "max_scale": 2.0**5}},
         r"scaler.min_scale=1024.0 is not allowed: it is above scaler.max_scale=32.0"),
        ({"scaler": {"growth_factor": 1.0}}, r"scaler.growth_factor=1.0 is not allowed: .* in \(1.0, inf\)"),
        ({"scaler": {"growth_factor": 0.5}}, r"scaler.growth_factor=0.5 is not allowed"),
        ({"scaler": {"backoff_factor": 1.5}}, r"scaler.backoff_factor=1.5 is not allowed: .* in \(0.0, 1.0\)"),
        ({"scaler": {"backoff_factor": 0.0}}, r"scaler.backoff_factor=0.0 is not allowed"),
        ({"scaler": {"growth_interval": 0}}, r"scaler.growth_interval=0 is not allowed: expected an integer >= 1"),
        ({"scaler": {"growth_interval": 10.5}}, r"scaler.growth_interval=10.5 is not allowed"),
        ({"scaler": {"hysteresis": 0}}, r"scaler.hysteresis=0 is not allowed: expected an integer >= 1"),
        ({"scaler": {"consecutive_hysteresis": "yes"}}, r"scaler.consecutive_hysteresis='yes' is not allowed"),
        ({"scaler": {"init": 1.0}}, r"scaler=\{'init': 1.0\} is not allowed: ScalerConfig has no field 'init'"),
        ({"scaler": 256.0}, r"scaler=256.0 is not allowed: expected a ScalerConfig or a mapping of its fields"),
        ({"probe_plan": {"steps": 0}}, r"probe_plan.steps=0 is not allowed: expected an integer >= 1"),
        ({"probe_plan": {"warmup_steps": 0}}, r"probe_plan.warmup_steps=0 is not allowed"),
        ({"probe_plan": {"rounds": 0}}, r"probe_plan.rounds=0 is not allowed"),
        ({"probe_plan": {"margin": 1.0}}, r"probe_plan.margin=1.0 is not allowed: .* in \[0.0, 1.0\)"),
        ({"probe_plan": {"reject_factor": 1.0}}, r"probe_plan.reject_factor=1.0 is not allowed: .* in \(1.0, inf\)"),
        ({"fallback_policy": {"patience": 0}}, r"fallback_policy.patience=0 is not allowed"),
        ({"fallback_policy": {"patience": True}}, r"fallback_policy.patience=True is not allowed"),
        ({"fallback_policy": {"skip_rate": 0.0}}, r"fallback_policy.skip_rate=0.0 is not allowed: .* in \(0.0, 1.0\]"),
        ({"fallback_policy": {"window": 0}}, r"fallback_policy.window=0 is not allowed"),
        ({"keep_fp32": ["net.(0"]}, r"keep_fp32 entry 'net.\(0' is not a module name, type or valid regular"),
        ({"keep_fp32": [3]}, r"keep_fp32 entry 3 must be a module name"),
        ({"keep_fp32": [int]}, r"keep_fp32 entry <class 'int'> is a class but not a torch.nn.Module"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AutoPrecision(**kwargs)


def test_non_finite_scale_is_rejected():
    with pytest.raises(ValueError, match="scaler.init_scale=nan"):
        AutoPrecision(scaler=ScalerConfig(init_scale=math.nan))
    with pytest.raises(ValueError, match="scaler.max_scale=inf"):
        ScalerConfig(max_scale=math.inf)


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
    plugin = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=128.0))
    assert plugin.precision == "16-mixed"
    assert isinstance(plugin.scaler, torch.amp.GradScaler) and plugin.scaler.get_scale() == 128.0
    assert make_trainer(plugins=[AutoPrecision("bf16-mixed")]).precision == "bf16-mixed"
    assert AutoPrecision().precision == "32-true" and AutoPrecision().scaler is None


def test_initial_scale_outside_the_bounds_warns_and_is_clamped():
    with pytest.warns(UserWarning, match=r"init_scale=65536.0 lies outside \[min_scale=1.0, max_scale=1024.0\]"):
        plugin = AutoPrecision("16-mixed", scaler=ScalerConfig(max_scale=1024.0))
    assert plugin.scaler.get_scale() == 1024.0
