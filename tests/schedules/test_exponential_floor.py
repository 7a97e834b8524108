"""``decay="exponential"`` with only ``min_lr_ratio``: the rate comes from the floor and the horizon."""

from __future__ import annotations

import pytest

from lightning_optkit.callbacks.warmup_decay import WarmupDecay
from lightning_optkit.schedules import build_schedule


def test_rate_reaches_the_floor_at_the_last_scheduled_step() -> None:
    s = build_schedule(warmup_steps=4, total_steps=54, decay="exponential", min_lr_ratio=0.05)
    rate = 0.05 ** (1 / 49)
    assert s(4) == 1.0
    for step in (5, 17, 30, 52):
        assert s(step) == pytest.approx(rate ** (step - 4), rel=1e-12)
    assert s(53) == 0.05 and s(54) == 0.05 and s(500) == 0.05
    # geometric: the same ratio every step
    assert s(21) / s(20) == pytest.approx(s(41) / s(40), rel=1e-12)


def test_callback_accepts_only_min_lr_ratio() -> None:
    rows = WarmupDecay(warmup=0, decay="exponential", min_lr_ratio=0.25).preview(3, base_lrs=[2.0])
    assert [r["pg1"] for r in rows[:4]] == pytest.approx([2.0, 1.0, 0.5, 0.5])


def test_without_floor_or_horizon_the_error_says_what_to_pass() -> None:
    with pytest.raises(ValueError, match="min_lr_ratio=0.01"):
        build_schedule(warmup_steps=0, total_steps=10, decay="exponential")
    with pytest.raises(ValueError, match="horizon"):
        build_schedule(warmup_steps=0, total_steps=None, decay="exponential", min_lr_ratio=0.1)


def test_explicit_gamma_is_unchanged() -> None:
    s = build_schedule(warmup_steps=0, total_steps=10, decay="exponential", gamma=0.5, min_lr_ratio=0.0)
    assert [s(i) for i in range(3)] == [1.0, 0.5, 0.25]


def test_misspelt_decay_suggests_the_shape() -> None:
    with pytest.raises(ValueError, match=r"did you mean decay='cosine'"):
        WarmupDecay(decay="cosin")
