"""compat="hf" against the transformers 5.x formulas, written out here (transformers is not imported).

Each reference below states the multiplier ``LambdaLR`` applies for the update at step ``s`` in
``transformers.optimization`` (5.x). They are compared at every step 0..T+20 with |diff| <= 1e-12.
"""

from __future__ import annotations

import math

import pytest

from lightning_optkit.schedules import build_schedule, list_shapes

TOL = 1e-12
COMBOS = [(0, 1), (0, 10), (1, 2), (3, 10), (10, 10 + 1), (7, 50), (25, 100), (100, 1000)]


def ref_warmup(s, w):
    return s / max(1, w)


def ref_linear(s, w, t):
    if s < w:
        return ref_warmup(s, w)
    return max(0.0, (t - s) / max(1, t - w))


def ref_cosine(s, w, t, num_cycles=0.5, min_lr_rate=0.0):
    if s < w:
        return ref_warmup(s, w)
    p = (s - w) / max(1, t - w)
    wave = (1.0 + math.cos(2.0 * math.pi * num_cycles * p)) / 2.0
    return max(0.0, min_lr_rate + (1 - min_lr_rate) * wave)


def ref_cosine_shifted(s, w, t, num_cycles=0.5, min_lr_rate=0.0, warmup_lr_rate=None):
    # the "cosine_warmup_with_min_lr" variant: warm-up without a step at 0, decay shifted by one step
    if s < w:
        if warmup_lr_rate is None:
            return (s + 1) / max(1, w)
        return warmup_lr_rate + (1 - warmup_lr_rate) * s / max(1, w - 1)
    p = (s - w + 1) / max(1, t - w)
    wave = (1.0 + math.cos(2.0 * math.pi * num_cycles * p)) / 2.0
    return max(0.0, min_lr_rate + (1 - min_lr_rate) * wave)


def ref_hard_restarts(s, w, t, num_cycles=1):
    if s < w:
        return ref_warmup(s, w)
    p = (s - w) / max(1, t - w)
    if p >= 1.0:
        return 0.0
    return max(0.0, (1.0 + math.cos(math.pi * math.fmod(num_cycles * p, 1.0))) / 2.0)


def ref_polynomial(s, w, t, lr_init, lr_end=1e-7, power=1.0):
    if s < w:
        return ref_warmup(s, w)
    if s > t:
        return lr_end / lr_init
    left = 1 - (s - w) / (t - w)
    return (lr_end + (lr_init - lr_end) * left**power) / lr_init


def ref_constant(s, w):
    return ref_warmup(s, w) if s < w else 1.0


def ref_inverse_sqrt(s, w, timescale=None):
    timescale = timescale if timescale is not None else (w if w else 10_000)
    if s < w:
        return ref_warmup(s, w)
    return (timescale / (s + timescale - w)) ** 0.5


def ref_wsd(s, w, decay, *, total=None, stable=None, warmup_type="linear", decay_type="cosine", min_lr_ratio=0.0,
            num_cycles=0.5):
    if stable is None:
        stable = total - w - decay
    ramp = {"linear": lambda p: p, "cosine": lambda p: (1 - math.cos(math.pi * p)) / 2,
            "1-sqrt": lambda p: 1 - (1 - p) ** 0.5}
    fall = {"linear": lambda p: 1 - p, "cosine": lambda p: (1 + math.cos(2 * math.pi * num_cycles * p)) / 2,
            "1-sqrt": lambda p: 1 - p**0.5}
    if s < w:
        return max(0.0, min_lr_ratio + (1 - min_lr_ratio) * ramp[warmup_type](s / max(1, w)))
    if s < w + stable:
        return 1.0
    if s < w + stable + decay:
        return max(0.0, min_lr_ratio + (1 - min_lr_ratio) * fall[decay_type]((s - w - stable) / max(1, decay)))
    return min_lr_ratio


def assert_matches(sched, reference, horizon):
    worst = max(abs(sched(s) - reference(s)) for s in range(horizon + 21))
    assert worst <= TOL, worst


@pytest.mark.parametrize(("w", "t"), COMBOS)
def test_linear(w, t):
    assert_matches(build_schedule(warmup_steps=w, total_steps=t, decay="linear", compat="hf"),
                   lambda s: ref_linear(s, w, t), t)


@pytest.mark.parametrize(("w", "t"), COMBOS)
@pytest.mark.parametrize(("cycles", "floor"), [(0.5, 0.0), (0.5, 0.1), (1.0, 0.0), (2.5, 0.3), (0.25, 0.05)])
def test_cosine(w, t, cycles, floor):
    sched = build_schedule(warmup_steps=w, total_steps=t, decay="cosine", compat="hf", num_cycles=cycles,
                           min_lr_ratio=floor)
    assert_matches(sched, lambda s: ref_cosine(s, w, t, cycles, floor), t)


def test_cosine_min_lr_rate_option_and_rise_past_horizon():
    sched = build_schedule(warmup_steps=5, total_steps=20, decay="cosine", compat="hf", min_lr_rate=0.2)
    assert_matches(sched, lambda s: ref_cosine(s, 5, 20, 0.5, 0.2), 20)
    assert sched(0) == 0.0 and sched(5) == 1.0 and sched(20) == pytest.approx(0.2)
    assert sched(30) > sched(20)  # the anchor's cosine rises again past the horizon: reproduced


@pytest.mark.parametrize(("w", "t"), COMBOS)
@pytest.mark.parametrize(("cycles", "floor", "warm_rate"), [(0.5, 0.1, None), (0.5, 0.0, 0.05), (1.5, 0.2, 0.5)])
def test_cosine_warmup_with_min_lr(w, t, cycles, floor, warm_rate):
    sched = build_schedule(warmup_steps=w, total_steps=t, decay="cosine_warmup_with_min_lr", compat="hf",
                           num_cycles=cycles, min_lr_ratio=floor, warmup_lr_rate=warm_rate)
    assert_matches(sched, lambda s: ref_cosine_shifted(s, w, t, cycles, floor, warm_rate), t)


@pytest.mark.parametrize(("w", "t"), COMBOS)
@pytest.mark.parametrize("cycles", [1, 2, 3, 7])
def test_hard_restarts(w, t, cycles):
    sched = build_schedule(warmup_steps=w, total_steps=t, decay="cosine_restarts", compat="hf", num_cycles=cycles)
    assert_matches(sched, lambda s: ref_hard_restarts(s, w, t, cycles), t)


@pytest.mark.parametrize(("w", "t"), COMBOS)
@pytest.mark.parametrize(("power", "lr_init", "lr_end"), [(1.0, 1e-3, 1e-7), (2.0, 0.1, 0.01), (0.5, 3e-4, 0.0)])
def test_polynomial(w, t, power, lr_init, lr_end):
    sched = build_schedule(warmup_steps=w, total_steps=t, decay="polynomial", compat="hf", power=power,
                           lr_init=lr_init, lr_end=lr_end)
    assert_matches(sched, lambda s: ref_polynomial(s, w, t, lr_init, lr_end, power), t)


def test_polynomial_default_lr_end():
    sched = build_schedule(warmup_steps=2, total_steps=10, decay="polynomial", compat="hf", lr_init=1e-3)
    assert sched(10) == pytest.approx(1e-4, abs=1e-15) and sched(99) == sched(10)


@pytest.mark.parametrize("w", [0, 1, 4, 50])
def test_constant(w):
    sched = build_schedule(warmup_steps=w, total_steps=None, decay="constant", compat="hf")
    assert_matches(sched, lambda s: ref_constant(s, w), 100)


@pytest.mark.parametrize(("w", "timescale"), [(0, None), (4, None), (10, 3), (0, 7), (100, None)])
def test_inverse_sqrt(w, timescale):
    options = {} if timescale is None else {"timescale": timescale}
    sched = build_schedule(warmup_steps=w, total_steps=None, decay="inverse_sqrt", compat="hf", **options)
    assert_matches(sched, lambda s: ref_inverse_sqrt(s, w, timescale), 300)


@pytest.mark.parametrize(("w", "t", "decay"), [(0, 10, 3), (2, 12, 5), (5, 40, 0), (10, 100, 20), (1, 3, 2)])
@pytest.mark.parametrize("warmup_type", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize(("decay_type", "floor", "cycles"), [("linear", 0.0, 0.5), ("cosine", 0.1, 0.5),
                                                             ("1-sqrt", 0.25, 0.5), ("cosine", 0.0, 1.0)])
def test_wsd(w, t, decay, warmup_type, decay_type, floor, cycles):
    sched = build_schedule(warmup_steps=w, total_steps=t, decay="wsd", compat="hf", num_decay_steps=decay,
                           warmup_type=warmup_type, decay_type=decay_type, min_lr_ratio=floor, num_cycles=cycles)
    assert_matches(sched, lambda s: ref_wsd(s, w, decay, total=t, warmup_type=warmup_type, decay_type=decay_type,
                                            min_lr_ratio=floor, num_cycles=cycles), t)


def test_wsd_with_stable_steps_needs_no_horizon_and_wins_over_total():
    sched = build_schedule(warmup_steps=3, total_steps=None, decay="wsd", compat="hf", num_decay_steps=4,
                           num_stable_steps=6, min_lr_ratio=0.1)
    assert not sched.requires_horizon
    assert_matches(sched, lambda s: ref_wsd(s, 3, 4, stable=6, min_lr_ratio=0.1), 13)
    both = build_schedule(warmup_steps=3, total_steps=50, decay="wsd", compat="hf", num_decay_steps=4,
                          num_stable_steps=6, min_lr_ratio=0.1)
    assert [both(s) for s in range(60)] == [sched(s) for s in range(60)]


def test_hf_table_by_hand():
    linear = build_schedule(warmup_steps=4, total_steps=8, decay="linear", compat="hf")
    assert [linear(s) for s in range(10)] == [0.0, 0.25, 0.5, 0.75, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    wsd = build_schedule(warmup_steps=2, total_steps=6, decay="wsd", compat="hf", num_decay_steps=2,
                         decay_type="linear", min_lr_ratio=0.2)
    assert [wsd(s) for s in range(8)] == pytest.approx([0.2, 0.6, 1.0, 1.0, 1.0, 0.6, 0.2, 0.2], abs=1e-15)


def test_every_hf_shape_is_covered_here():
    assert list_shapes("hf") == ["constant", "cosine", "cosine_restarts", "cosine_warmup_with_min_lr", "inverse_sqrt",
                                 "linear", "polynomial", "wsd"]
