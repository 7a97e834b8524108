"""Property-based tests of the default convention over every registered shape."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_optkit.schedules import (
    build_schedule,
    get_shape,
    list_shapes,
    list_warmups,
)

FAST = settings(max_examples=80, deadline=None, derandomize=True)


@st.composite
def _restarts(draw, w, t):
    span = t - w
    cycles = draw(st.integers(1, max(1, span // 4)))
    mul = draw(st.sampled_from([1.0, 1.25, 1.5])) if cycles <= 3 else 1.0  # growing cycles need room
    return {"num_cycles": cycles, "cycle_mul": mul,
            "cycle_decay": draw(st.floats(0.1, 1.0))}


@st.composite
def _step(draw, w, t):
    if t - w < 2:
        return None  # no room for a milestone
    marks = draw(st.lists(st.integers(w + 1, t - 1), min_size=1, max_size=4, unique=True))
    return {"milestones": sorted(marks), "gamma": draw(st.floats(0.05, 1.0))}


@st.composite
def _wsd(draw, w, t):
    if draw(st.booleans()):
        return {"decay_steps": draw(st.integers(1, t - w)), "decay_shape": draw(st.sampled_from(["linear", "cosine",
                                                                                                  "1-sqrt"]))}
    fraction = draw(st.floats(0.01, 1.0))
    if round(fraction * t) > t - w:  # longer than the steps after the warm-up: clip to them
        fraction = (t - w) / t
    return {"decay_fraction": fraction}


OPTIONS = {
    "constant": lambda w, t: st.just({}),
    "linear": lambda w, t: st.just({}),
    "cosine": lambda w, t: st.just({}),
    "polynomial": lambda w, t: st.builds(dict, power=st.floats(0.2, 5.0)),
    "cosine_restarts": _restarts,
    "exponential": lambda w, t: st.one_of(st.builds(dict, gamma=st.floats(0.8, 1.0)),
                                          st.builds(dict, half_life=st.floats(1.0, 500.0))),
    "step": _step,
    "inverse_sqrt": lambda w, t: st.one_of(st.just({}), st.builds(dict, timescale=st.floats(1.0, 200.0))),
    "wsd": _wsd,
}


def test_every_shape_has_a_property_strategy():
    assert sorted(OPTIONS) == list_shapes()


@st.composite
def schedules(draw, names=None):
    name = draw(st.sampled_from(names or list_shapes()))
    w = draw(st.integers(0, 30))
    t = w + draw(st.integers(1, 80))
    options = draw(OPTIONS[name](w, t))
    if options is None:  # no room for a milestone
        name, options = "linear", {}
    floor = draw(st.sampled_from([0.0, 0.0, 0.05, 0.3, 1.0]) | st.floats(0.0, 1.0))
    warmup = draw(st.sampled_from(list_warmups()))
    start = draw(st.none() | st.floats(0.001, 1.0))
    sched = build_schedule(warmup_steps=w, total_steps=t, decay=name, min_lr_ratio=floor, warmup=warmup,
                           warmup_start=start, **options)
    return sched, name, w, t, floor


@FAST
@given(schedules())
def test_multiplier_within_floor_and_peak(case):
    sched, _, w, t, floor = case
    for s in range(t + 10):
        value = sched(s)
        assert 0.0 <= value <= 1.0
        if s >= w:
            assert floor <= value


@FAST
@given(schedules())
def test_peak_is_used_exactly_after_the_warmup(case):
    sched, _, w, _, _ = case
    assert sched(w) == 1.0
    assert all(sched(s) <= 1.0 for s in range(w))


@FAST
@given(schedules(names=[n for n in list_shapes() if get_shape(n).monotone]))
def test_warmup_rises_and_decay_falls(case):
    sched, _, w, t, _ = case
    ramp = [sched(s) for s in range(w + 1)]
    tail = [sched(s) for s in range(w, t + 10)]
    assert all(a <= b for a, b in pairwise(ramp))
    assert all(a >= b for a, b in pairwise(tail))


@FAST
@given(schedules(names=[n for n in list_shapes() if get_shape(n).requires_horizon]))
def test_last_scheduled_step_and_beyond_hold_the_floor(case):
    sched, _, w, t, floor = case
    if t - w >= 2:
        assert sched(t - 1) == floor
    assert all(sched(s) == floor for s in range(t, t + 20))
    assert sched(10**9) == floor


@FAST
@given(schedules(names=[n for n in list_shapes() if get_shape(n).requires_horizon]))
def test_no_update_at_zero_before_the_last_step(case):
    sched, _, _, t, _ = case
    assert all(sched(s) > 0.0 for s in range(t - 1))
