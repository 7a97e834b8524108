"""OptimizerSearch with plain closures: the LR test and the race run with no Trainer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lightning_optkit.callbacks.auto_optimizer.search import OptimizerSearch
from lightning_optkit.optim import OptimizerSettings, Plan, RunProfile, inspect_model, make_plan
from tests.helpers.optim_models import cycling, mse_step


def _task() -> tuple[nn.Module, Callable[[], Any], Callable[..., float]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    data = [(torch.randn(16, 4), torch.randn(16, 1)) for _ in range(4)]
    return model, cycling(data), mse_step(model)


def _search(model: nn.Module, **settings) -> tuple[Plan, OptimizerSearch]:
    plan = make_plan(inspect_model(model), RunProfile(horizon=1000), OptimizerSettings(**settings))
    kernels = {c.optimizer: "for-loop" for c in plan.candidates}
    return plan, OptimizerSearch(plan.candidates, plan.budget or 0, plan.lr_test, kernels)


def test_race_returns_the_winner_and_leaves_the_input_choice_alone() -> None:
    model, next_batch, step = _task()
    plan, search = _search(model, mode="race", candidates=["adamw", "sgd"], budget=16)
    broadcast = []
    outcome = search.run(plan.choice, model, step, next_batch,
                         broadcast=lambda v: broadcast.append(v) or v)
    choice = outcome.choice
    assert plan.choice.race is None and plan.choice.overhead_steps == 0  # the input is unchanged
    assert broadcast == [choice.race["winner"]] and choice.race["winner"] is not None
    assert choice.label == choice.race["winner"] and choice.kernel == "for-loop"
    assert choice.overhead_steps == choice.race["loser_steps"] <= 16
    assert all(row["curve"] for row in choice.candidates)
    assert outcome.optimizer is not None and len(outcome.optimizer.state) > 0  # it kept its state
    assert [g["name"] for g in choice.groups] == [g["name"] for g in outcome.optimizer.param_groups]


def test_lr_test_alone_restores_the_weights_and_builds_at_the_suggestion() -> None:
    model, next_batch, step = _task()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    plan, search = _search(model, mode="rules", lr_test="always")
    assert plan.searches and plan.choice.mode == "rules"
    outcome = search.run(plan.choice, model, step, next_batch)
    choice = outcome.choice
    assert choice.lr_test is not None and choice.lr == choice.lr_test["suggestion"]
    assert choice.candidates[0]["lr"] == choice.lr and choice.race is None
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())
    assert outcome.optimizer is not None
    assert outcome.optimizer.param_groups[0]["lr"] == choice.lr
    assert 0 < choice.overhead_steps <= 40 and choice.overhead_seconds > 0


def test_an_lr_test_that_uses_the_budget_leaves_no_race() -> None:
    model, next_batch, step = _task()
    plan, search = _search(model, mode="race", candidates=["adamw", "sgd", "nadamw"], budget=16,
                           lr_test="always")
    outcome = search.run(plan.choice, model, step, next_batch)
    assert "LR test used the budget: no race" in outcome.choice.reasons
    assert outcome.choice.race is None and outcome.optimizer is not None
