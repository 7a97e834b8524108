"""The real fp16 path on CPU (fp16 autocast + CPU GradScaler) through a Trainer: skips, scale
sequence, fused AdamW with clipping, the fallback ladder, forensics, keep_fp32 and logging."""

from __future__ import annotations

import warnings
from unittest import mock

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from lightning_optkit._trainer import skipped_updates
from lightning_optkit.precision import AutoPrecision, FallbackPolicy, ProbePlan, ScalerConfig
from tests.helpers.models import make_trainer
from tests.helpers.precision_models import (
    CPU_AVX2,
    CPU_BF16,
    InfModel,
    PlantedModel,
    RecordingLogger,
    StepRecorder,
)

HW = "lightning_optkit.plugins.auto_precision.plugin.probe_hardware"


def _fit(plugin: AutoPrecision, model, steps: int, facts=CPU_AVX2, **trainer_kwargs):
    recorder = StepRecorder()
    trainer = make_trainer(plugins=[plugin], deterministic=False, max_steps=steps, max_epochs=None,
                           callbacks=[recorder, *trainer_kwargs.pop("callbacks", [])], **trainer_kwargs)
    with mock.patch(HW, return_value=facts):
        trainer.fit(model)
    return trainer, recorder


def test_exact_skip_counts_and_scale_sequence_with_hysteresis():
    plugin = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=256.0, hysteresis=2, growth_interval=3),
                           fallback=False)
    trainer, rec = _fit(plugin, InfModel(bad_steps=[1, 3, 4, 5]), steps=10)
    assert rec.scales == [256, 256, 256, 128, 64, 32, 32, 32, 64, 64]
    assert rec.skipped == [0, 1, 1, 2, 3, 4, 4, 4, 4, 4]
    assert plugin.skipped_steps == 4
    assert skipped_updates(trainer) == 4  # the shared protocol WarmupDecay reads
    assert trainer.global_step == 10  # Lightning still counts the skipped ones
    assert rec.precisions == ["16-mixed"] * 10


def test_skipped_steps_leave_the_weights_untouched():
    class Snapshot(Callback):
        def __init__(self) -> None:
            self.changed: list[bool] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.before = [p.detach().clone() for p in pl_module.parameters()]

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.changed.append(any(not torch.equal(a, b) for a, b in zip(self.before, pl_module.parameters())))

    snap = Snapshot()
    _fit(AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=256.0)), InfModel(bad_steps=[1, 2]), steps=4,
         callbacks=[snap])
    assert snap.changed == [True, False, False, True]


@pytest.mark.parametrize("fused", [True, False])
def test_gradient_clipping_works_with_fused_adamw(fused):
    def run(clip):
        torch.manual_seed(0)
        model = InfModel(bad_steps=[2], fused=fused, lr=0.05)
        plugin = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=256.0))
        _fit(plugin, model, steps=5, gradient_clip_val=clip)
        return [p.detach().clone() for p in model.parameters()], plugin.skipped_steps

    clipped, skipped = run(0.05)
    assert skipped == 1
    unclipped, _ = run(None)
    assert any(not torch.allclose(a, b) for a, b in zip(clipped, unclipped))
    if fused:
        torch.manual_seed(0)
        model = InfModel(bad_steps=[2], fused=False, lr=0.05)
        _fit(AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=256.0)), model, steps=5, gradient_clip_val=0.05)
        for a, b in zip(clipped, model.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("facts", "target"), [(CPU_AVX2, "32-true"), (CPU_BF16, "bf16-mixed")])
def test_fallback_ladder_fires_at_the_floor(facts, target):
    plugin = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=4.0, hysteresis=1, min_scale=1.0),
                           fallback_policy=FallbackPolicy(patience=3))
    model = InfModel(bad_steps="all", only_in_fp16=True)
    with pytest.warns(UserWarning, match=f"switching 16-mixed -> {target} after step 4"):
        trainer, rec = _fit(plugin, model, steps=8, facts=facts)
    # scale 4 -> 2 -> 1, then 3 skips at the floor: the switch happens after step 4
    assert rec.precisions == ["16-mixed"] * 4 + [target] * 4
    assert rec.skipped == [1, 2, 3, 4, 5, 5, 5, 5]
    assert plugin.decision.precision == target and plugin.decision.source == "fallback"
    [switch] = plugin.decision.fallbacks
    assert (switch["step"], switch["from"], switch["to"]) == (4, "16-mixed", target)
    assert "3 consecutive skipped steps at the minimum loss scale 1" in switch["reason"]
    state = trainer.precision_plugin.state_dict()
    assert state["decision"]["fallbacks"] == [switch]


def test_fallback_ladder_fires_on_the_skip_rate():
    plugin = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=2.0**10, hysteresis=1, min_scale=1.0),
                           fallback_policy=FallbackPolicy(patience=100, skip_rate=0.5, window=4))
    with pytest.warns(UserWarning, match="75% of the last 4 steps skipped"):
        _, rec = _fit(plugin, InfModel(bad_steps=[0, 1, 2, 4, 5]), steps=6)
    assert rec.precisions == ["16-mixed"] * 4 + ["32-true"] * 2


def test_forensics_names_the_planted_layer_and_costs_nothing_when_clean():
    class HookCounter(Callback):
        def __init__(self) -> None:
            self.hooks: list[int] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.hooks.append(sum(len(m._forward_hooks) for m in pl_module.modules()))

    counter = HookCounter()
    plugin = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=256.0), fallback=False, forensics=True)
    with pytest.warns(UserWarning, match=r"forward output of 'net.1' \(Amplify\) is non-finite"):
        _fit(plugin, PlantedModel(), steps=4, callbacks=[counter])
    [report] = plugin.overflow_reports
    assert report["forward_module"] == "net.1" and report["forward_type"] == "Amplify"
    assert report["step"] == 1  # step 0 skipped -> armed -> step 1 dissected
    assert "keep_fp32=['net.1']" in report["suggestion"]
    assert set(report["nonfinite_params"]) >= {"net.0.weight", "net.3.weight"}
    assert counter.hooks == [0, 5, 0, 0]  # hooks (net and its 4 layers) only on the step after a skip

    clean = HookCounter()
    quiet = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=256.0), forensics=True)
    _fit(quiet, InfModel(), steps=4, callbacks=[clean])
    assert clean.hooks == [0, 0, 0, 0] and quiet.overflow_reports == []


@pytest.mark.parametrize("entry", ["net.1", "Amplify", r"net\.[1]", "tests.helpers.precision_models.Amplify"])
def test_keep_fp32_removes_the_overflow(entry):
    plugin = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=256.0), keep_fp32=[entry])
    model = PlantedModel()
    _fit(plugin, model, steps=4)
    assert plugin.skipped_steps == 0
    assert "forward" not in model.net[1].__dict__  # the wrapper is removed at teardown


def test_calibration_avoids_a_burst_of_skipped_steps():
    def run(calibrate):
        plugin = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=2.0**24, max_scale=2.0**24),
                               calibrate=calibrate, fallback=False)
        _fit(plugin, InfModel(), steps=4)
        return plugin

    plain = run(False)
    assert plain.skipped_steps > 0
    calibrated = run(True)
    assert calibrated.skipped_steps == 0
    assert calibrated.calibration["reruns"] >= 1
    assert calibrated.calibration["scale"] < 2.0**24
    assert any("calibrated on the first batch" in r for r in calibrated.decision.reasons)


def test_interval_logging_and_hyperparameters():
    logger = RecordingLogger()
    plugin = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=256.0, hysteresis=1))
    _fit(plugin, InfModel(bad_steps=[1]), steps=6, logger=logger, log_every_n_steps=2)
    amp = [(step, m) for step, m in logger.metrics if "amp/loss_scale" in m]
    assert [step for step, _ in amp] == [1, 3, 5]
    assert [m["amp/loss_scale"] for _, m in amp] == [128.0, 128.0, 128.0]
    assert [m["amp/skipped_steps"] for _, m in amp] == [1.0, 1.0, 1.0]
    assert all(m["amp/precision"] == 11.0 for _, m in amp)  # fp16 significand bits
    assert any(h.get("auto_precision/precision") == "16-mixed" and h.get("auto_precision/mode") == "16-mixed"
               for h in logger.hparams_calls)


def test_no_scaler_work_outside_fp16():
    plugin = AutoPrecision("32-true")
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*(workers|LeafSpec|log_every_n_steps).*")
        _, rec = _fit(plugin, InfModel(), steps=3)
    assert rec.scales == [None] * 3 and plugin.skipped_steps == 0


def test_weight_cache_keeps_gradients_after_a_no_grad_forward():
    class NoGradFirst(InfModel):
        def training_step(self, batch, batch_idx):
            with torch.no_grad():
                self(batch[0])  # e.g. a teacher pass with the same weights, cached casts
            return super().training_step(batch, batch_idx)

    model = NoGradFirst(fused=False)
    before = [p.detach().clone() for p in model.parameters()]
    _fit(AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=256.0)), model, steps=2)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_forensics_hooks_leave_with_fp16():
    from tests.helpers.precision_models import cuda_facts

    class HookCounter(Callback):
        def __init__(self) -> None:
            self.hooks: list[int] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.hooks.append(sum(len(m._forward_hooks) for m in pl_module.modules()))

    counter = HookCounter()
    plugin = AutoPrecision(probe_plan=ProbePlan(warmup_steps=1, steps=2, reject_factor=1e9),
                           scaler=ScalerConfig(init_scale=256.0), forensics=True)
    # T4-class facts: the probe runs fp32 (steps 0-1), fp16 (2-4), fp32 (5-6); step 2 overflows
    _, rec = _fit(plugin, InfModel(bad_steps=[2]), steps=8, facts=cuda_facts(7, 5), callbacks=[counter])
    assert rec.start_precisions[:7] == ["32-true"] * 2 + ["16-mixed"] * 3 + ["32-true"] * 2
    assert counter.hooks[3] > 0 and counter.hooks[4] > 0  # armed after the skip at step 2
    assert counter.hooks[5:7] == [0, 0]  # disarmed when the probe left fp16
