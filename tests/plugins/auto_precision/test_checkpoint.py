"""Checkpoints: scaler state, counters and decision under a stable key; resume without a new probe;
a checkpoint of Lightning's MixedPrecision keeps its loss scale."""

from __future__ import annotations

from unittest import mock

import torch
from lightning.pytorch.plugins.precision import MixedPrecision

from lightning_optkit.precision import AutoPrecision, FallbackPolicy, ProbePlan, ScalerConfig
from tests.helpers.models import make_trainer
from tests.helpers.precision_models import CPU_AVX2, CPU_BF16, InfModel, StepRecorder

HW = "lightning_optkit.plugins.auto_precision.plugin.probe_hardware"


def _fit(plugin, model, steps, facts=CPU_AVX2, ckpt_path=None):
    recorder = StepRecorder()
    trainer = make_trainer(plugins=[plugin], deterministic=False, max_steps=steps, max_epochs=None, callbacks=[recorder])
    with mock.patch(HW, return_value=facts):
        trainer.fit(model, ckpt_path=ckpt_path)
    return trainer, recorder


def _collapsing_fp16():
    return AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=2.0, hysteresis=1),
                         fallback_policy=FallbackPolicy(patience=2))


def _load(path):
    return torch.load(path, weights_only=False)


def test_fp16_round_trip_keeps_scale_counters_and_decision(tmp_path):
    first = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=256.0, hysteresis=2, growth_interval=1000))
    trainer, rec = _fit(first, InfModel(bad_steps=[1, 2]), steps=4)
    assert rec.scales[-1] == 128.0
    path = tmp_path / "fp16.ckpt"
    trainer.save_checkpoint(path)
    state = _load(path)["AutoPrecision"]
    assert state["scaler"]["scale"] == 128.0 and state["scaler"]["skipped_steps"] == 2
    assert state["scaler"]["hysteresis_left"] == 0
    assert state["decision"]["precision"] == "16-mixed"

    second = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=2.0**16, hysteresis=2, growth_interval=1000))
    _, rec2 = _fit(second, InfModel(bad_steps=[5]), steps=7, ckpt_path=path)
    # resumed at step 4: scale 128 kept; the hysteresis was used up, so step 5 halves at once
    assert rec2.scales == [128.0, 64.0, 64.0]
    assert rec2.skipped == [2, 3, 3]
    assert second.decision.resumed and second.decision.precision == "16-mixed"


def test_auto_resume_keeps_the_decision_without_a_new_probe(tmp_path):
    first = AutoPrecision("auto", probe_plan=ProbePlan(warmup_steps=1, steps=2, rounds=1))
    trainer, rec = _fit(first, InfModel(), steps=8, facts=CPU_BF16)
    assert rec.phases == ["precision_probe"] * 6 + [None] * 2
    assert first.decision.source == "probe"
    saved = first.decision.to_dict()
    path = tmp_path / "auto.ckpt"
    trainer.save_checkpoint(path)

    second = AutoPrecision("auto", probe_plan=ProbePlan(warmup_steps=1, steps=2, rounds=1))
    with mock.patch("lightning_optkit.precision.controller.ProbeRecorder", side_effect=AssertionError("probed")):
        _, rec2 = _fit(second, InfModel(), steps=11, facts=CPU_BF16, ckpt_path=path)
    assert rec2.phases == [None] * 3
    assert rec2.precisions == [saved["precision"]] * 3
    assert second.decision.resumed
    assert second.decision.measurements == saved["measurements"]
    assert second.decision.reasons == saved["reasons"]


def test_a_fallback_survives_resume(tmp_path):
    first = _collapsing_fp16()
    model = InfModel(bad_steps="all", only_in_fp16=True)
    trainer, rec = _fit(first, model, steps=5)
    assert rec.precisions[-1] == "32-true"
    path = tmp_path / "fallback.ckpt"
    trainer.save_checkpoint(path)
    second = _collapsing_fp16()
    _, rec2 = _fit(second, InfModel(bad_steps="all", only_in_fp16=True), steps=7, ckpt_path=path)
    assert rec2.precisions == ["32-true", "32-true"]
    assert second.skipped_steps == first.skipped_steps
    assert len(second.decision.fallbacks) == 1


def test_mixed_precision_checkpoint_loads_its_scale(tmp_path):
    lightning_plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**8))
    trainer = make_trainer(plugins=[lightning_plugin], max_steps=3, max_epochs=None)
    trainer.fit(InfModel(bad_steps=[1]))
    assert lightning_plugin.scaler.get_scale() == 128.0
    path = tmp_path / "mixed.ckpt"
    trainer.save_checkpoint(path)
    assert "MixedPrecision" in _load(path)

    ours = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=2.0**16))
    _, rec = _fit(ours, InfModel(), steps=5, ckpt_path=path)
    assert rec.scales == [128.0, 128.0]
    assert ours.skipped_steps == 0  # MixedPrecision kept no skip count


def test_subclass_finds_the_state_saved_by_auto_precision(tmp_path):
    first = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=64.0))
    trainer, _ = _fit(first, InfModel(bad_steps=[0, 1]), steps=3)
    path = tmp_path / "base.ckpt"
    trainer.save_checkpoint(path)

    class MyPrecision(AutoPrecision):
        pass

    mine = MyPrecision("16-mixed", scaler=ScalerConfig(init_scale=2.0**16))
    _, rec = _fit(mine, InfModel(), steps=4, ckpt_path=path)
    assert rec.scales == [32.0]
    assert mine.skipped_steps == 2


def test_state_dict_is_plain_data():
    plugin = AutoPrecision()
    state = plugin.state_dict()
    assert state["format"] == 1 and state["decision"] is None and state["scaler"] is None
    clone = AutoPrecision()
    clone.load_state_dict({"format": 1, "decision": {"mode": "auto", "precision": "32-true", "source": "rule"},
                           "scaler": {"scale": 8.0}})
    assert clone.state_dict()["scaler"] == {"scale": 8.0}


def test_a_resumed_decision_the_hardware_cannot_run_fast_is_made_anew(tmp_path):
    first = AutoPrecision(probe=False)
    trainer, _ = _fit(first, InfModel(), steps=2, facts=CPU_BF16)
    first.decision.precision = "bf16-mixed"  # as a probe on that machine would have decided
    path = tmp_path / "bf16.ckpt"
    trainer.save_checkpoint(path)
    second = AutoPrecision(probe=False)
    _, rec = _fit(second, InfModel(), steps=4, facts=CPU_AVX2, ckpt_path=path)
    assert second.decision.precision == "32-true" and not second.decision.resumed
    assert "not plausible on this hardware" in second.decision.reasons[-1]
    assert rec.precisions == ["32-true"] * 2


def test_plugin_pickles_before_and_after_fit():
    import copy
    import pickle

    plugin = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=64.0), keep_fp32=["net.0"])
    clone = pickle.loads(pickle.dumps(plugin))
    assert clone.mode == "16-mixed" and clone.keep_fp32 == ["net.0"]
    _fit(plugin, InfModel(bad_steps=[0]), steps=2)
    after = pickle.loads(pickle.dumps(plugin))
    assert after.skipped_steps == 1 and after.decision == plugin.decision
    assert copy.deepcopy(plugin).scaler.get_scale() == plugin.scaler.get_scale()


def test_saved_state_loads_with_weights_only(tmp_path):
    plugin = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=64.0), fallback=False, forensics=True)
    from tests.helpers.precision_models import PlantedModel

    _fit(plugin, PlantedModel(), steps=3)
    state = plugin.state_dict()
    assert state["overflow_reports"] and state["decision"] and state["scaler"]
    torch.save(state, tmp_path / "state.pt")
    assert torch.load(tmp_path / "state.pt", weights_only=True) == state


def test_mixed_precision_scale_carries_into_an_auto_decision(tmp_path):
    from tests.helpers.precision_models import cuda_facts

    lightning_plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**8))
    trainer = make_trainer(plugins=[lightning_plugin], max_steps=3, max_epochs=None)
    trainer.fit(InfModel(bad_steps=[0, 1]))
    path = tmp_path / "mixed.ckpt"
    trainer.save_checkpoint(path)

    ours = AutoPrecision(probe=False)  # a T4-class device: the rule picks 16-mixed
    _, rec = _fit(ours, InfModel(), steps=5, facts=cuda_facts(7, 5), ckpt_path=path)
    assert ours.decision.precision == "16-mixed" and not ours.decision.resumed
    assert rec.scales == [64.0, 64.0]
