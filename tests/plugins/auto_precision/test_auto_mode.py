"""mode='auto': the rule, the measured probe, rank agreement (mocked exchange), manual optimization."""

from __future__ import annotations

import contextlib
from typing import Any
from unittest import mock

import pytest
import torch

from lightning_optkit._trainer import run_notes
from lightning_optkit.plugins.auto_precision.trainer_link import TrainerLink
from lightning_optkit.precision import AutoPrecision, FallbackPolicy, ProbePlan, ScalerConfig, choose_measured
from lightning_optkit.precision.decision import Measurement
from tests.helpers.models import TinyModel, make_trainer
from tests.helpers.precision_models import CPU_AVX2, CPU_BF16, StepRecorder, cuda_facts

HW = "lightning_optkit.plugins.auto_precision.plugin.probe_hardware"
GATHER = "lightning_optkit.plugins.auto_precision.trainer_link.gather_rows"


@contextlib.contextmanager
def two_ranks(exchange):
    """A single-process run that believes it has two ranks; ``exchange(strategy, row)`` answers the gathers."""
    with mock.patch.object(TrainerLink, "world_size", return_value=2), mock.patch(GATHER, exchange):
        yield


class DtypeModel(TinyModel):
    """Records the autocast dtype (or None) and the weight-cache setting seen by each step."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[torch.dtype | None] = []
        self.cache: list[bool] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        enabled = torch.is_autocast_enabled("cpu")
        self.seen.append(torch.get_autocast_dtype("cpu") if enabled else None)
        self.cache.append(torch.is_autocast_cache_enabled())
        return super().training_step(batch, batch_idx)


def _fit(plugin, model, steps, facts, **kwargs):
    recorder = StepRecorder()
    trainer = make_trainer(plugins=[plugin], deterministic=False, max_steps=steps, max_epochs=None, callbacks=[recorder], **kwargs)
    with mock.patch(HW, return_value=facts):
        trainer.fit(model)
    return trainer, recorder


def test_avx2_cpu_chooses_fp32_without_probe_or_autocast():
    plugin = AutoPrecision()
    model = DtypeModel()
    trainer, rec = _fit(plugin, model, 4, CPU_AVX2)
    assert plugin.decision.precision == "32-true" and plugin.decision.source == "rule"
    assert model.seen == [None] * 4 and rec.phases == [None] * 4
    recorded = run_notes(trainer).decisions["precision"]
    assert recorded == {**plugin.decision.to_dict(), "summary": "32-true (rule)"}
    assert trainer.precision == "32-true"


def test_probe_runs_real_steps_in_each_candidate_and_keeps_the_choice():
    plugin = AutoPrecision(probe_plan=ProbePlan(warmup_steps=1, steps=2, rounds=2, reject_factor=1e9))
    model = DtypeModel()
    before = [p.detach().clone() for p in model.parameters()]
    trainer, rec = _fit(plugin, model, 10, CPU_BF16)
    bf16 = torch.bfloat16
    # ABBA, fp32 first: fp32 (warm-up, timed), bf16 (warm-up, timed), bf16 (timed), fp32 (warm-up, timed)
    assert model.seen[:7] == [None, None, bf16, bf16, bf16, None, None]
    assert rec.phases == ["precision_probe"] * 7 + [None] * 3  # every probe step, hooks included
    assert rec.start_phases == rec.phases  # marked before the first batch's hooks run
    assert rec.start_precisions[:7] == ["32-true", "32-true", "bf16-mixed", "bf16-mixed", "bf16-mixed",
                                        "32-true", "32-true"]
    decision = plugin.decision
    assert decision.source == "probe" and decision.candidates == ["bf16-mixed", "32-true"]
    assert {k: v["steps"] for k, v in decision.measurements.items()} == {"bf16-mixed": 2, "32-true": 2}
    measured = {k: Measurement(k, v["median_ms"], v["steps"], v["finite"]) for k, v in decision.measurements.items()}
    assert decision.precision == choose_measured(decision.candidates, measured)[0]
    expected = bf16 if decision.precision == "bf16-mixed" else None
    assert model.seen[7:] == [expected] * 3
    assert all(model.cache)  # weight cache on: the optimizer steps outside the autocast region
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # probe steps trained
    recorded = run_notes(trainer).decisions["precision"]
    assert recorded["source"] == "probe" and recorded["summary"].startswith(f"{decision.precision} (probe; per step: ")


def test_probe_false_keeps_the_rule_choice():
    plugin = AutoPrecision(probe=False)
    _, rec = _fit(plugin, DtypeModel(), 3, CPU_BF16)
    # a CPU's bf16 can be slower than fp32: without a measurement the reference is kept
    assert plugin.decision.precision == "32-true" and plugin.decision.source == "rule"
    assert "no probe (probe=False): 32-true kept" in plugin.decision.reasons[-1]
    assert rec.phases == [None] * 3


def test_non_finite_probe_loss_rejects_the_candidate():
    class NanInBf16(DtypeModel):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            if torch.is_autocast_enabled("cpu") and self.trainer.global_step == 3:
                return loss + float("nan") * loss.detach()  # a NaN loss value, finite gradients
            return loss

    plugin = AutoPrecision(probe_plan=ProbePlan(warmup_steps=1, steps=2, reject_factor=1e9))
    _fit(plugin, NanInBf16(), 8, CPU_BF16)
    assert plugin.decision.precision == "32-true"
    assert plugin.decision.measurements["bf16-mixed"]["finite"] is False
    assert plugin.decision.measurements["32-true"]["finite"] is True


def test_probe_cut_short_by_the_end_of_the_run_still_decides():
    plugin = AutoPrecision(probe_plan=ProbePlan(warmup_steps=1, steps=4, reject_factor=1e9))
    _fit(plugin, DtypeModel(), 3, CPU_BF16)
    assert plugin.decision.source == "probe"
    assert any(r.startswith("probe cut short after 3 of 11 steps") for r in plugin.decision.reasons)


@pytest.mark.parametrize(("mine", "other", "expected"), [
    (CPU_BF16, [0.0, 0.0, 1.0], "32-true"),       # the other rank has no native bf16
    (cuda_facts(8, 0), [0.0, 1.0, 1.0], "32-true"),  # A100 + T4
])
def test_two_ranks_that_differ_agree_on_the_lowest_common_precision(mine, other, expected):
    calls = []

    def exchange(strategy, row):
        calls.append(list(row))
        return [list(row), other]

    plugin = AutoPrecision()
    with two_ranks(exchange):
        # a CUDA rank in this CPU test only lends its facts; the steps still run on CPU
        _, rec = _fit(plugin, DtypeModel(), 3, mine)
    assert calls == [[1.0, 0.0, 1.0]]  # this rank: bf16-mixed and 32-true (order of PRECISIONS)
    assert plugin.decision.precision == expected and plugin.decision.candidates == [expected]
    assert plugin.decision.world_size == 2
    assert any("ranks agreed on the common candidates" in r for r in plugin.decision.reasons)
    assert rec.phases == [None] * 3


def test_ranks_merge_probe_measurements():
    def exchange(strategy, row):
        if len(row) == 3:  # candidates: both ranks have bf16
            return [list(row), list(row)]
        other = list(row)
        other[2] = 0.0  # the other rank saw a non-finite bf16 loss
        return [list(row), other]

    plugin = AutoPrecision(probe_plan=ProbePlan(warmup_steps=1, steps=1, rounds=1))
    with two_ranks(exchange):
        _fit(plugin, DtypeModel(), 6, CPU_BF16)
    assert plugin.decision.precision == "32-true"
    assert plugin.decision.measurements["bf16-mixed"]["finite"] is False


class ManualModel(DtypeModel):
    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> None:
        opt = self.optimizers()
        loss = DtypeModel.training_step(self, batch, batch_idx)
        if self.trainer.global_step == 1:
            loss = loss * float("inf")
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()


def test_manual_optimization_uses_the_scaler_without_weight_cache():
    plugin = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=256.0, hysteresis=1))
    model = ManualModel()
    _, rec = _fit(plugin, model, 4, CPU_AVX2)
    assert rec.skipped == [0, 1, 1, 1] and rec.scales == [256.0, 128.0, 128.0, 128.0]
    assert model.seen == [torch.float16] * 4
    assert model.cache == [False] * 4  # the optimizer steps inside the autocast region


def test_manual_optimization_in_auto_mode_does_not_probe():
    plugin = AutoPrecision()
    _, rec = _fit(plugin, ManualModel(), 3, CPU_BF16)
    assert plugin.decision.source == "rule" and rec.phases == [None] * 3


def test_validate_without_fit_decides_by_rule():
    plugin = AutoPrecision()
    trainer = make_trainer(plugins=[plugin], limit_val_batches=2)
    with mock.patch(HW, return_value=CPU_BF16):
        trainer.validate(TinyModel(), verbose=False)
    assert plugin.decision.precision == "32-true" and plugin.decision.source == "rule"
    with mock.patch(HW, return_value=cuda_facts(9, 0)):  # where the rule is decisive
        decided = AutoPrecision().controller
        decided.set_hardware(cuda_facts(9, 0))
        assert decided.start(fitting=False) == "bf16-mixed"


def test_fallback_target_is_agreed_across_ranks():
    from tests.helpers.precision_models import InfModel

    def exchange(strategy, row):
        return [list(row), [0.0] * len(row)]  # the other rank has no native bf16

    plugin = AutoPrecision("16-mixed", scaler=ScalerConfig(init_scale=2.0, hysteresis=1),
                           fallback_policy=FallbackPolicy(patience=2))
    with two_ranks(exchange), \
            pytest.warns(UserWarning, match="switching 16-mixed -> 32-true"):
        _, rec = _fit(plugin, InfModel(bad_steps="all", only_in_fp16=True), 5, CPU_BF16)
    assert plugin.decision.fallbacks[0]["to"] == "32-true" and rec.precisions[-1] == "32-true"


def test_deterministic_trainer_decides_by_rule_and_repeats_exactly():
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        plugin = AutoPrecision(verbose=False)
        model = TinyModel()
        trainer = make_trainer(plugins=[plugin], max_steps=6, max_epochs=None, deterministic=True)
        with mock.patch(HW, return_value=CPU_BF16):
            trainer.fit(model)
        assert plugin.decision.source == "rule" and "deterministic=True" in plugin.decision.reasons[-1]
        results.append((plugin.decision.precision, [p.detach().clone() for p in model.parameters()]))
    assert results[0][0] == results[1][0] == "32-true"
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1]))


def test_manual_optimization_on_a_cpu_keeps_fp32_unmeasured():
    class Manual(TinyModel):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False

        def training_step(self, batch, batch_idx):
            opt = self.optimizers()
            loss = super().training_step(batch, batch_idx)
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()

    plugin = AutoPrecision(verbose=False)
    trainer = make_trainer(plugins=[plugin], max_steps=3, max_epochs=None, deterministic=False)
    with mock.patch(HW, return_value=CPU_BF16):
        trainer.fit(Manual())
    assert plugin.decision.precision == "32-true"
    assert "the probe needs fit, automatic optimization and one optimizer" in plugin.decision.reasons[-1]
