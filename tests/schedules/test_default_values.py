"""Value tables of the default convention: step 0, the warm-up/decay hand-off, the last step, past it."""

from __future__ import annotations

import math

import pytest

from lightning_optkit.schedules import build_schedule

C45 = 0.5 * (1 + math.cos(math.pi / 4))  # cosine at p = 1/4
C135 = 0.5 * (1 + math.cos(3 * math.pi / 4))  # cosine at p = 3/4


def table(sched, steps):
    return [sched(s) for s in steps]


# W=2, T=7: warm-up steps 0, 1; decay steps 2..6 with p = (s - 2) / 4; horizon from 7 on.
STEPS = [0, 1, 2, 3, 4, 5, 6, 7, 50]


@pytest.mark.parametrize(
    ("decay", "options", "floor", "expected"),
    [
        ("linear", {}, 0.0, [1 / 3, 2 / 3, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0, 0.0]),
        ("linear", {}, 0.2, [1 / 3, 2 / 3, 1.0, 0.8, 0.6, 0.4, 0.2, 0.2, 0.2]),
        ("cosine", {}, 0.0, [1 / 3, 2 / 3, 1.0, C45, 0.5, C135, 0.0, 0.0, 0.0]),
        ("cosine", {}, 0.1, [1 / 3, 2 / 3, 1.0, 0.1 + 0.9 * C45, 0.55, 0.1 + 0.9 * C135, 0.1, 0.1, 0.1]),
        ("polynomial", {"power": 2.0}, 0.0, [1 / 3, 2 / 3, 1.0, 0.5625, 0.25, 0.0625, 0.0, 0.0, 0.0]),
        ("polynomial", {}, 0.0, [1 / 3, 2 / 3, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0, 0.0]),
        ("constant", {}, 0.3, [1 / 3, 2 / 3, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
        ("wsd", {"decay_steps": 3, "decay_shape": "linear"}, 0.0, [1 / 3, 2 / 3, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0, 0.0]),
        ("wsd", {"decay_steps": 3, "decay_shape": "cosine"}, 0.0, [1 / 3, 2 / 3, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0, 0.0]),
        ("wsd", {"decay_steps": 3, "decay_shape": "1-sqrt"}, 0.0,
         [1 / 3, 2 / 3, 1.0, 1.0, 1.0, 1 - math.sqrt(0.5), 0.0, 0.0, 0.0]),
        ("wsd", {"decay_fraction": 3 / 7, "decay_shape": "linear"}, 0.5,
         [1 / 3, 2 / 3, 1.0, 1.0, 1.0, 0.75, 0.5, 0.5, 0.5]),
        ("cosine_restarts", {"num_cycles": 1}, 0.0, [1 / 3, 2 / 3, 1.0, C45, 0.5, C135, 0.0, 0.0, 0.0]),
    ],
)
def test_horizon_shapes_table(decay, options, floor, expected):
    sched = build_schedule(warmup_steps=2, total_steps=7, decay=decay, min_lr_ratio=floor, **options)
    assert table(sched, STEPS) == pytest.approx(expected, abs=1e-15)
    # the hand-off, the last scheduled step and the horizon are exact, not approximately right
    assert sched(2) == 1.0
    if decay != "constant":
        assert sched(6) == floor and sched(7) == floor and sched(10**9) == floor


def test_wsd_default_decay_is_20_percent_one_minus_sqrt():
    sched = build_schedule(warmup_steps=0, total_steps=20, decay="wsd")
    assert [sched(s) for s in (0, 15, 16, 17, 18, 19)] == pytest.approx(
        [1.0, 1.0, 1.0, 1 - math.sqrt(1 / 3), 1 - math.sqrt(2 / 3), 0.0], abs=1e-15)
    assert sched.describe()["options"] == {"decay_steps": None, "decay_fraction": None, "decay_shape": "1-sqrt"}


def test_cosine_restarts_equal_cycles_with_peak_decay():
    sched = build_schedule(warmup_steps=0, total_steps=8, decay="cosine_restarts", num_cycles=2, cycle_decay=0.5)
    # cycle 0: steps 0-3, p = t/4 (the restart replaces its floor); cycle 1: steps 4-7 at half the
    # height, p = (t - 4)/3, ending on the floor
    assert table(sched, range(10)) == pytest.approx(
        [1.0, C45, 0.5, C135, 0.5, 0.375, 0.125, 0.0, 0.0, 0.0], abs=1e-15)


def test_cosine_restarts_growing_cycles():
    sched = build_schedule(warmup_steps=1, total_steps=10, decay="cosine_restarts", num_cycles=2, cycle_mul=2.0,
                           min_lr_ratio=0.1)
    # 9 decay steps split 3 + 6: cycle starts at steps 1 and 4
    got = table(sched, range(12))
    cyc2 = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 5)) for k in range(6)]
    assert got == pytest.approx([0.5, 1.0, 0.775, 0.325, *cyc2, 0.1, 0.1], abs=1e-15)
    assert sched(4) == 1.0 and sched(9) == 0.1


@pytest.mark.parametrize(("kw", "expected"), [
    ({"gamma": 0.5}, [0.5, 1.0, 0.5, 0.25, 0.125, 0.5**9]),
    ({"half_life": 2}, [0.5, 1.0, 0.5**0.5, 0.5, 0.5**1.5, 0.5**4.5]),
])
def test_exponential_table(kw, expected):
    sched = build_schedule(warmup_steps=1, total_steps=None, decay="exponential", **kw)
    assert table(sched, [0, 1, 2, 3, 4, 10]) == pytest.approx(expected, rel=1e-14)
    assert sched(1) == 1.0 and not sched.requires_horizon


def test_exponential_relative_to_floor():
    sched = build_schedule(warmup_steps=0, total_steps=None, decay="exponential", gamma=0.5, min_lr_ratio=0.2)
    assert table(sched, [0, 1, 2]) == pytest.approx([1.0, 0.6, 0.4], abs=1e-15)
    assert sched(10_000) == 0.2


def test_step_table():
    sched = build_schedule(warmup_steps=1, total_steps=8, decay="step", milestones=[3, 5], gamma=0.5)
    assert table(sched, range(10)) == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25])
    assert not sched.requires_horizon


def test_inverse_sqrt_table_and_default_timescale():
    sched = build_schedule(warmup_steps=4, total_steps=None, decay="inverse_sqrt")
    assert sched.describe()["options"] == {"timescale": 4.0}
    assert table(sched, [0, 3, 4, 8, 16]) == pytest.approx([0.2, 0.8, 1.0, 0.5**0.5, 0.5], abs=1e-15)
    no_warmup = build_schedule(warmup_steps=0, total_steps=None, decay="inverse_sqrt")
    assert no_warmup(30_000) == pytest.approx(0.5, abs=1e-15)


def test_constant_needs_no_horizon():
    sched = build_schedule(warmup_steps=3, total_steps=None, decay="constant")
    assert table(sched, [0, 1, 2, 3, 10**6]) == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])


# -- warm-up shapes (W=4, default start 1/5) ---------------------------------------------------
@pytest.mark.parametrize(("warmup", "start", "expected"), [
    ("linear", None, [0.2, 0.4, 0.6, 0.8]),
    ("linear", 0.0, [0.0, 0.25, 0.5, 0.75]),
    ("linear", 0.1, [0.1, 0.325, 0.55, 0.775]),
    ("cosine", None, [0.2 + 0.8 * 0.5 * (1 - math.cos(math.pi * q)) for q in (0, 0.25, 0.5, 0.75)]),
    ("cosine", 0.0, [0.5 * (1 - math.cos(math.pi * q)) for q in (0, 0.25, 0.5, 0.75)]),
    ("exponential", None, [0.2 ** (1 - q) for q in (0, 0.25, 0.5, 0.75)]),
    ("exponential", 0.01, [0.01, 0.01**0.75, 0.1, 0.01**0.25]),
    ("constant", None, [0.2, 0.2, 0.2, 0.2]),
    ("constant", 0.5, [0.5, 0.5, 0.5, 0.5]),
])
def test_warmup_table(warmup, start, expected):
    sched = build_schedule(warmup_steps=4, total_steps=10, decay="linear", warmup=warmup, warmup_start=start)
    assert table(sched, range(4)) == pytest.approx(expected, abs=1e-15)
    assert sched(4) == 1.0  # the first update after the warm-up runs at the peak exactly


def test_no_update_at_zero_unless_asked():
    assert build_schedule(warmup_steps=100, total_steps=1000)(0) == pytest.approx(1 / 101)
    assert build_schedule(warmup_steps=100, total_steps=1000, warmup_start=0.0)(0) == 0.0


def test_no_warmup_starts_at_peak():
    sched = build_schedule(warmup_steps=0, total_steps=5, decay="linear")
    assert table(sched, range(6)) == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]


def test_single_decay_step_runs_at_peak():
    # one update in the whole run (e.g. a smoke test): never an update at LR 0
    assert build_schedule(warmup_steps=0, total_steps=1, decay="cosine")(0) == 1.0
    sched = build_schedule(warmup_steps=3, total_steps=4, decay="linear", min_lr_ratio=0.1)
    assert sched(3) == 1.0 and sched(4) == 0.1


def test_floor_one_is_flat():
    sched = build_schedule(warmup_steps=0, total_steps=10, decay="cosine", min_lr_ratio=1.0)
    assert {sched(s) for s in range(20)} == {1.0}
