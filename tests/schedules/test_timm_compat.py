"""compat="timm" against timm's CosineLRScheduler (stepped per update), written out here in absolute LRs.

timm sets ``lr(t)`` after ``t`` updates (``step_update(num_updates=t)``); the schedule's multiplier
must equal ``lr(t) / base_lr`` at every step 0..T+20 with |diff| <= 1e-12.
"""

from __future__ import annotations

import math

import pytest

from lightning_optkit.schedules import build_schedule

TOL = 1e-12


def ref_timm_lr(t, *, base, t_initial, lr_min=0.0, cycle_mul=1.0, cycle_decay=1.0, cycle_limit=1, warmup_t=0,
                warmup_lr_init=0.0, warmup_prefix=False, k_decay=1.0):
    if t < warmup_t:
        return warmup_lr_init + t * (base - warmup_lr_init) / warmup_t
    if warmup_prefix:
        t -= warmup_t
    if cycle_mul == 1:
        cycle, length, into = t // t_initial, t_initial, t - t_initial * (t // t_initial)
    else:
        # cycle lengths t_initial * mul**i; the cycle index solves the geometric sum
        cycle = math.floor(math.log(1 - t / t_initial * (1 - cycle_mul), cycle_mul))
        length = cycle_mul**cycle * t_initial
        into = t - (1 - cycle_mul**cycle) / (1 - cycle_mul) * t_initial
    if cycle >= cycle_limit:
        return lr_min
    peak = base * cycle_decay**cycle
    return lr_min + (peak - lr_min) * (1 + math.cos(math.pi * into**k_decay / length**k_decay)) / 2


CASES = [
    # (warmup_steps, total_steps, options)
    (0, 20, {}),
    (5, 50, {}),
    (5, 50, {"warmup_prefix": True}),
    (5, 50, {"warmup_prefix": True, "warmup_lr_init": 0.01, "lr_min": 0.05}),
    (10, 100, {"t_initial": 30, "cycle_limit": 3, "cycle_decay": 0.5}),
    (10, 100, {"t_initial": 20, "cycle_mul": 2.0, "cycle_limit": 3, "cycle_decay": 0.7, "warmup_prefix": True}),
    (3, 60, {"t_initial": 7, "cycle_mul": 1.5, "cycle_limit": 5, "lr_min": 0.1}),
    (4, 40, {"k_decay": 1.5, "lr_min": 0.02, "warmup_lr_init": 0.001}),
    (4, 40, {"k_decay": 0.5, "warmup_prefix": True}),
    (8, 64, {"base_lr": 3e-4, "lr_min": 1e-6, "warmup_lr_init": 1e-7, "cycle_limit": 2, "t_initial": 25}),
]


@pytest.mark.parametrize(("w", "t", "options"), CASES)
def test_matches_timm(w, t, options):
    sched = build_schedule(warmup_steps=w, total_steps=t, decay="cosine", compat="timm", **options)
    ref_kwargs = dict(options)
    ref_kwargs.setdefault("t_initial", t - w if options.get("warmup_prefix") else t)
    base = ref_kwargs.pop("base_lr", 1.0)
    worst = max(abs(sched(s) - ref_timm_lr(s, base=base, warmup_t=w, **ref_kwargs) / base) for s in range(t + 21))
    assert worst <= TOL, worst


def test_ratio_options_map_to_absolute_timm_arguments():
    ratios = build_schedule(warmup_steps=5, total_steps=50, decay="cosine", compat="timm", min_lr_ratio=0.1,
                            warmup_start=0.02, base_lr=0.5)
    absolute = build_schedule(warmup_steps=5, total_steps=50, decay="cosine", compat="timm", lr_min=0.05,
                              warmup_lr_init=0.01, base_lr=0.5)
    assert max(abs(ratios(s) - absolute(s)) for s in range(80)) <= TOL
    assert ratios(0) == pytest.approx(0.02)


def test_prefixed_timm_equals_hf_cosine_then_holds_floor():
    timm = build_schedule(warmup_steps=6, total_steps=40, decay="cosine", compat="timm", warmup_prefix=True)
    hf = build_schedule(warmup_steps=6, total_steps=40, decay="cosine", compat="hf")
    assert max(abs(timm(s) - hf(s)) for s in range(41)) <= TOL
    assert [timm(s) for s in range(40, 60)] == [0.0] * 20


def test_default_timm_never_reaches_the_peak_with_warmup():
    sched = build_schedule(warmup_steps=5, total_steps=50, decay="cosine", compat="timm")
    assert max(sched(s) for s in range(60)) < 1.0  # the anchor's quirk: the cosine clock includes the warm-up


def test_t_initial_removes_the_need_for_a_horizon():
    sched = build_schedule(warmup_steps=2, total_steps=None, decay="cosine", compat="timm", t_initial=10)
    assert not sched.requires_horizon
    assert sched(12) == 0.0
