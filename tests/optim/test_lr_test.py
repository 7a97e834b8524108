"""The LR range test: the reading rule on known curves, and state restored after a sweep."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lightning_optkit.optim import create_optimizer, suggest_lr, sweep_lrs
from lightning_optkit.optim.lr_test import smooth
from lightning_optkit.optim.runner import choose_kernels, measure_kernels, run_lr_test
from tests.helpers.optim_models import mse_step


def _curve(lrs: list[float], best: float, blow: float) -> list[float]:
    return [1.0 / (1 + lr / best * 3) if lr < blow else 1e3 for lr in lrs]


def test_sweep_is_geometric_around_the_prior() -> None:
    lrs = sweep_lrs(1e-2, 5, span=100)
    assert lrs[0] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(1.0)
    assert lrs[2] == pytest.approx(1e-2)
    with pytest.raises(ValueError, match="at least 2"):
        sweep_lrs(1e-2, 1)


def test_valley_rule_and_clamp() -> None:
    lrs = sweep_lrs(1e-3, 40)
    res = suggest_lr(lrs, _curve(lrs, 1e-3, 3e-2), prior=1e-3)
    assert 1e-4 <= res.suggestion <= 1e-2 and res.raw is not None
    assert "valley" in res.reason
    # a curve whose valley sits far above the prior is clamped to 10x
    res = suggest_lr(lrs, _curve(lrs, 1e-1, 10.0), prior=1e-3)
    assert res.suggestion == pytest.approx(1e-2) and "clamped" in res.reason
    assert res.raw > res.suggestion


def test_flat_or_short_curves_keep_the_prior() -> None:
    lrs = sweep_lrs(1e-3, 20)
    assert suggest_lr(lrs, [1.0] * 20, 1e-3).suggestion == 1e-3
    assert suggest_lr(lrs[:3], [1.0, 0.5, 0.2], 1e-3).reason.startswith("too few")
    rising = [1.0 + i for i in range(20)]
    assert "no clear descent" in suggest_lr(lrs, rising, 1e-3).reason


def test_divergence_cuts_the_curve_and_nan_is_safe() -> None:
    lrs = sweep_lrs(1e-3, 30)
    losses = [1.0 - 0.02 * i for i in range(15)] + [float("nan")] * 15
    res = suggest_lr(lrs, losses, 1e-3)
    assert len(res.losses) == 15 and math.isfinite(res.suggestion)
    assert smooth([1.0, float("inf"), 2.0]) == [1.0]


def test_run_lr_test_restores_the_weights() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [(torch.randn(16, 4), torch.randn(16, 1)) for _ in range(20)]
    res, spent = run_lr_test(model, lambda lr: create_optimizer(model, "adamw", lr=lr),
                             mse_step(model), batches, prior=1e-2)
    assert 1 <= spent <= 20 and 1e-3 <= res.suggestion <= 1e-1
    for k, v in model.state_dict().items():
        assert torch.equal(v, start[k]), k


def test_measure_kernels_times_each_offered_kernel_without_touching_params() -> None:
    model = nn.Linear(16, 16)
    before = model.weight.detach().clone()
    times = measure_kernels(list(model.parameters()), "adamw", 1e-3, steps=2)
    assert set(times) == {"for-loop", "foreach", "fused"} and all(t > 0 for t in times.values())
    assert set(measure_kernels(list(model.parameters()), "radam", 1e-3, steps=1)) == {
        "for-loop", "foreach"}
    assert torch.equal(model.weight, before)


def test_choose_kernels_times_small_models_and_picks_by_availability_above_the_limit() -> None:
    params = list(nn.Linear(16, 16).parameters())
    kernels, times = choose_kernels(params, ["adamw", "radam", "adamw"])
    assert set(kernels) == set(times) == {"adamw", "radam"}
    assert kernels["adamw"] in times["adamw"] and kernels["radam"] in {"for-loop", "foreach"}
    large, untimed = choose_kernels(params, ["adamw", "radam", "adagrad"], limit=10)
    assert untimed == {} and large["adamw"] == "fused" and large["radam"] == "foreach"
