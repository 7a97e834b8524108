"""make_plan: the whole decision before training, from profiles and settings, with no Trainer."""

from __future__ import annotations

import pytest

from lightning_optkit.optim import ModelProfile, OptimizerSettings, RunProfile, inspect_model, make_plan
from lightning_optkit.optim.decide import SAFETY_NET_STEPS, resolve_mode
from tests.helpers.optim_models import DENSE_FIRST, TinyLSTM, cnn_bn, mlp


def test_rules_plan_needs_no_search() -> None:
    plan = make_plan(inspect_model(mlp()), RunProfile(horizon=1000),
                     OptimizerSettings(mode="rules"))
    assert plan.choice.mode == "rules" and not plan.searches and not plan.lr_test
    assert plan.choice.optimizer == plan.candidates[0].optimizer == DENSE_FIRST
    assert plan.budget == 50 and len(plan.candidates) <= 3


def test_auto_races_when_the_run_affords_it_and_not_otherwise() -> None:
    profile = inspect_model(cnn_bn())
    long = make_plan(profile, RunProfile(horizon=2000, batch_size=64))
    assert long.choice.mode == "race" and long.searches and long.budget == 100
    short = make_plan(profile, RunProfile(horizon=100, batch_size=64))
    assert short.choice.mode == "rules" and not short.searches
    assert any("too short to race" in r for r in short.choice.reasons)


def test_the_user_values_reach_the_choice() -> None:
    settings = OptimizerSettings(mode="rules", candidates=["sgd"], lr=0.05, weight_decay=0.0)
    plan = make_plan(inspect_model(mlp()), RunProfile(horizon=100), settings)
    assert (plan.choice.optimizer, plan.choice.lr, plan.choice.weight_decay) == ("sgd", 0.05, 0.0)
    assert "lr fixed by the user: 0.05" in plan.choice.reasons


def test_lr_test_is_planned_for_a_weak_prior_in_a_race_and_when_asked() -> None:
    fine_tune = ModelProfile(num_params=1000, num_frozen=9000, linear_layers=2)  # weak prior
    run = RunProfile(horizon=4000)
    assert make_plan(fine_tune, run).lr_test
    assert not make_plan(fine_tune, run, OptimizerSettings(lr=1e-4)).lr_test  # lr fixed
    assert not make_plan(fine_tune, run, OptimizerSettings(lr_test="never")).lr_test
    always = make_plan(inspect_model(mlp()), run, OptimizerSettings(mode="rules", lr_test="always"))
    assert always.lr_test and always.searches and always.choice.mode == "rules"


def test_manual_optimization_falls_back_to_rules_or_fails_for_race() -> None:
    profile, run = inspect_model(cnn_bn()), RunProfile(horizon=2000)
    assert make_plan(profile, run, automatic_optimization=False).choice.mode == "rules"
    with pytest.raises(ValueError, match="mode='race' needs automatic optimization"):
        make_plan(profile, run, OptimizerSettings(mode="race"), automatic_optimization=False)


def test_plans_that_cannot_work_fail_before_training() -> None:
    with pytest.raises(ValueError, match="no trainable parameters"):
        make_plan(ModelProfile(num_params=0), RunProfile(horizon=100))
    with pytest.raises(ValueError, match=r"budget=500 steps is not smaller than the run \(100"):
        make_plan(inspect_model(mlp()), RunProfile(horizon=100), OptimizerSettings(budget=500))
    with pytest.raises(ValueError, match="mode='race' needs a known horizon"):
        make_plan(inspect_model(mlp()), RunProfile(), OptimizerSettings(mode="race"))


@pytest.mark.skipif(DENSE_FIRST != "prodigy", reason="prodigyopt missing")
def test_auto_trains_a_learning_rate_free_first_choice_without_a_search() -> None:
    plan = make_plan(inspect_model(mlp()), RunProfile(horizon=5000, batch_size=64))
    assert plan.choice.optimizer == "prodigy" and plan.choice.mode == "rules"
    assert not plan.searches and plan.choice.hparams == {"safeguard_warmup": True}
    assert any("learning-rate free: no search needed" in r for r in plan.choice.reasons)
    named = make_plan(inspect_model(mlp()), RunProfile(horizon=5000, batch_size=64),
                      OptimizerSettings(candidates=["prodigy", "adamw"]))
    assert named.choice.mode == "race"  # the user named the candidates: they are raced


def test_auto_checks_a_fixed_lr_choice_against_the_runner_up_when_a_race_is_too_dear() -> None:
    profile = inspect_model(cnn_bn())  # SGD-Nesterov 0.1 first: a fixed lr that may not learn
    plan = make_plan(profile, RunProfile(horizon=200, batch_size=64))  # 5% = 10 steps < 16
    assert plan.choice.mode == "race" and plan.budget == SAFETY_NET_STEPS
    assert [c.optimizer for c in plan.candidates] == ["sgd", "adamw"] and not plan.lr_test
    assert any(r.startswith("safety net: sgd@1e-01 checked against adamw") for r in
               plan.choice.reasons)
    tiny = make_plan(profile, RunProfile(horizon=100, batch_size=64))  # too short even for that
    assert tiny.choice.mode == "rules" and not tiny.searches
    rules = make_plan(profile, RunProfile(horizon=200), OptimizerSettings(mode="rules"))
    assert rules.choice.mode == "rules"
    recurrent = make_plan(inspect_model(TinyLSTM()), RunProfile(horizon=None))
    assert recurrent.choice.mode == "race" and recurrent.budget == SAFETY_NET_STEPS


def test_auto_sizes_the_race_from_free_memory() -> None:
    big = 93_000_000
    assert resolve_mode("auto", 10_000, 500, 3, big)[0] == "rules"  # memory unknown: the limit
    assert resolve_mode("auto", 10_000, 500, 3, big, free_memory=139 * 2**30)[0] == "race"
    mode, why = resolve_mode("auto", 10_000, 500, 3, big, free_memory=4 * 2**30)
    assert mode == "rules" and "does not fit in half the free memory" in why
    assert resolve_mode("race", 10_000, 500, 3, big, free_memory=2**20)[0] == "race"
