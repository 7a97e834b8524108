"""Hand-computed value tables of the hf and timm conventions (W=2, T=6): step 0, the hand-off, the
last scheduled step and past the horizon, where each anchor has its own behaviour."""

from __future__ import annotations

import math

import pytest

from lightning_optkit.schedules import build_schedule


def cos_half(p):
    return 0.5 * (1 + math.cos(math.pi * p))


STEPS = [0, 1, 2, 3, 4, 5, 6, 8, 10]
R = 2**-0.5


@pytest.mark.parametrize(("decay", "options", "expected"), [
    ("linear", {}, [0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0, 0.0]),
    # p = (s - 2) / 4, not clamped: past T the cosine rises again (the anchor's behaviour)
    ("cosine", {}, [0.0, 0.5, 1.0, cos_half(0.25), 0.5, cos_half(0.75), 0.0, 0.5, 1.0]),
    ("cosine", {"min_lr_ratio": 0.2}, [0.0, 0.5, 1.0, 0.2 + 0.8 * cos_half(0.25), 0.6, 0.2 + 0.8 * cos_half(0.75),
                                       0.2, 0.6, 1.0]),
    # warm-up (s + 1) / W, decay progress (s - W + 1) / (T - W): neither 0 nor the peak is used
    ("cosine_warmup_with_min_lr", {"min_lr_ratio": 0.1},
     [0.5, 1.0, 0.1 + 0.9 * cos_half(0.25), 0.55, 0.1 + 0.9 * cos_half(0.75), 0.1, 0.1 + 0.9 * cos_half(1.25),
      0.1 + 0.9 * cos_half(1.75), 0.1 + 0.9 * cos_half(2.25)]),
    ("cosine_restarts", {"num_cycles": 2}, [0.0, 0.5, 1.0, 0.5, 1.0, 0.5, 0.0, 0.0, 0.0]),
    ("polynomial", {"power": 2.0, "lr_init": 0.1, "lr_end": 0.01},
     [0.0, 0.5, 1.0, (0.09 * 0.5625 + 0.01) / 0.1, 0.325, (0.09 * 0.0625 + 0.01) / 0.1, 0.1, 0.1, 0.1]),
    ("constant", {}, [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
    ("inverse_sqrt", {}, [0.0, 0.5, 1.0, (2 / 3) ** 0.5, R, (2 / 5) ** 0.5, (2 / 6) ** 0.5, 0.5, (2 / 10) ** 0.5]),
    # WSD: warm-up from min_lr_ratio, stable, 2 decay steps, then min_lr_ratio
    ("wsd", {"num_decay_steps": 2, "min_lr_ratio": 0.2}, [0.2, 0.6, 1.0, 1.0, 1.0, 0.6, 0.2, 0.2, 0.2]),
])
def test_hf_table(decay, options, expected):
    sched = build_schedule(warmup_steps=2, total_steps=6, decay=decay, compat="hf", **options)
    assert [sched(s) for s in STEPS] == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize(("options", "expected"), [
    # the cosine clock includes the warm-up: step 2 is already 1/3 into the cosine; from T: lr_min
    ({}, [0.0, 0.5, 0.75, 0.5, 0.25, cos_half(5 / 6), 0.0, 0.0, 0.0]),
    # warmup_prefix: the cosine starts after the warm-up and spans t_initial = T - W = 4 steps
    ({"warmup_prefix": True, "min_lr_ratio": 0.1},
     [0.0, 0.5, 1.0, 0.1 + 0.9 * cos_half(0.25), 0.55, 0.1 + 0.9 * cos_half(0.75), 0.1, 0.1, 0.1]),
    # two cycles of 3 steps after a prefixed warm-up, the second at half height
    ({"warmup_prefix": True, "t_initial": 3, "cycle_limit": 2, "cycle_decay": 0.5},
     [0.0, 0.5, 1.0, 0.75, 0.25, 0.5, 0.375, 0.0, 0.0]),
])
def test_timm_table(options, expected):
    sched = build_schedule(warmup_steps=2, total_steps=6, decay="cosine", compat="timm", **options)
    assert [sched(s) for s in STEPS] == pytest.approx(expected, abs=1e-15)
