"""The per-group plan: what every param group's schedule resolves to, with no Trainer."""

from __future__ import annotations

import pickle
import warnings

import pytest

from lightning_optkit.schedules import build_schedule
from lightning_optkit.schedules.durations import Duration
from lightning_optkit.schedules.plan import GroupSchedule, SchedulePlan, late_group_factor, resolve_total
from lightning_optkit.schedules.spec import ScheduleSpec, untuned_warmup


def plan_of(*, total=None, groups=None, late_group_warmup=None, **spec) -> SchedulePlan:
    """The plan WarmupDecay(**spec, total=..., groups=..., late_group_warmup=...) builds."""
    return SchedulePlan.create(ScheduleSpec.create(**spec), total=total, groups=groups,
                               late_group_warmup=late_group_warmup)


def test_two_groups_with_different_base_lrs() -> None:
    plan = plan_of(warmup="10%", decay="cosine", min_lr_ratio=0.1,
                               groups={"head": {"decay": "linear", "warmup": 5}})
    total = plan.total_steps(horizon=100, steps_per_epoch=10)
    assert total == 100
    body = plan.resolve_group(index=0, j=0, name="body", base_lr=1e-3, base_wd=0.1, total=total)
    head = plan.resolve_group(index=0, j=1, name="head", base_lr=1e-2, total=total)
    assert (body.key, body.warmup_steps, head.key, head.warmup_steps) == (None, 10, "head", 5)
    cosine = build_schedule(warmup_steps=10, total_steps=100, decay="cosine", min_lr_ratio=0.1)
    linear = build_schedule(warmup_steps=5, total_steps=100, decay="linear", min_lr_ratio=0.1)
    assert body.schedule == cosine and head.schedule == linear
    for step in range(0, 110):
        assert body.base_lr * body.factor(step) == 1e-3 * cosine(step)
        assert head.base_lr * head.factor(step) == 1e-2 * linear(step)
    # each group peaks at its own LR right after its warm-up and ends at its own floor
    assert [body.factor(10), head.factor(5)] == [1.0, 1.0]
    assert [body.base_lr * body.factor(99), head.base_lr * head.factor(99)] == [1e-4, 1e-3]
    assert body.row(optimizer=0, total=total) == {
        "optimizer": 0, "group": "body", "warmup_steps": 10, "total_steps": 100, "peak_lr": 1e-3,
        "floor_lr": 1e-4, "schedule": cosine.describe(),
    }
    assert plan.unmatched([body.key, head.key]) == []


@pytest.mark.parametrize(("key", "index", "j", "name"), [
    ("head", 0, 1, "head"), ("1", 0, 1, "pg2"), ("0/1", 0, 1, "pg2"), ("1/0", 1, 0, "pg1"), ("1/head", 1, 0, "head"),
])
def test_overrides_match_by_name_index_or_optimizer_and_group(key, index, j, name) -> None:
    plan = plan_of(warmup=2, groups={key: {"warmup": 4}})
    assert plan.spec_for(index, j, name) == (key, plan.groups[key])
    assert plan.spec_for(index, j + 1, "other") == (None, plan.spec)
    assert plan.unmatched([None]) == [key]


def test_the_total_against_the_horizon() -> None:
    assert resolve_total(None, horizon=120, steps_per_epoch=None) == 120
    assert resolve_total(None, horizon=float("inf"), steps_per_epoch=None) is None
    assert resolve_total(None, horizon=-1, steps_per_epoch=None) is None
    assert resolve_total(Duration("fraction", 0.5), horizon=20, steps_per_epoch=None) == 10
    assert resolve_total(Duration("epochs", 2.0), horizon=None, steps_per_epoch=5) == 10
    assert plan_of(total="3ep").total_steps(horizon=None, steps_per_epoch=7) == 21


def test_warmup_longer_than_the_total_is_one_error() -> None:
    message = r"warmup='11st' is not allowed: it is 11 steps, and the warm-up must be shorter than the schedule's 10 steps"
    with pytest.raises(ValueError, match=message):  # known at construction
        plan_of(warmup=11, total=10)
    plan = plan_of(warmup="2ep")
    with pytest.raises(ValueError, match=r"optimizer 0, group 'pg1': warmup='2ep' is not allowed: it is 16 steps"):
        plan.resolve_group(index=0, j=0, name="pg1", base_lr=0.1, total=8, steps_per_epoch=8)
    with pytest.raises(ValueError, match=r"warmup_steps=10 is not allowed: the warm-up must be shorter than total_steps=10"):
        build_schedule(warmup_steps=10, total_steps=10)


def test_warmup_as_long_as_the_total_is_shortened_with_a_warning() -> None:
    spec = ScheduleSpec.create(warmup="1ep")
    assert spec.warmup_steps(total=8, steps_per_epoch=8, beta2=None) == (7, (
        "warmup=1ep is as long as the schedule (8 steps): it would never decay; warming up for 7 steps so the"
        " last update reaches the peak. Use a shorter warm-up (such as '5%') for a decay phase."
    ))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # known before the run, but only warned about at fit
        plan_of(warmup=10, total=10)
    with pytest.warns(UserWarning, match=r"warmup=1ep is as long as the schedule \(8 steps\)"):
        schedule, warmup = spec.resolve(total=8, steps_per_epoch=8, beta2=None)
    assert (warmup, schedule.warmup_steps, schedule(7)) == (7, 7, 1.0)


def test_auto_warmup() -> None:
    assert untuned_warmup(0.999) == 2000
    assert untuned_warmup(0.98) == 100
    with pytest.raises(ValueError, match=r"beta2=1.0 is not allowed"):
        untuned_warmup(1.0)
    spec = ScheduleSpec.create(warmup="auto")
    assert spec.warmup_steps(total=None, steps_per_epoch=None, beta2=0.98) == (100, None)
    steps, note = spec.warmup_steps(total=50, steps_per_epoch=None, beta2=0.98)
    assert steps == 49 and note.startswith("warmup='auto' gives 100 steps")
    with pytest.raises(ValueError, match=r"has no betas"):
        spec.warmup_steps(total=50, steps_per_epoch=None, beta2=None)


def test_a_late_group_warms_up_from_the_step_it_joined() -> None:
    plan = plan_of(warmup=2, decay="constant", late_group_warmup=4)
    late = plan.resolve_group(index=0, j=1, name="late", base_lr=1.0, total=100, joined=20)
    assert late.warmup_steps == 4
    assert [late.factor(s, joined=20) for s in (20, 21, 23, 24, 50)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert late_group_factor(5, start=20, warmup=4) == 0.2  # a step before it joined: never 0
    assert late_group_factor(25, start=20, warmup=0) == 1.0


def test_hf_polynomial_reads_the_optimizers_default_lr() -> None:
    plan = plan_of(warmup=2, compat="hf", decay="polynomial", options={"lr_end": 1e-4})
    group = plan.resolve_group(index=0, j=0, name="pg1", base_lr=0.01, total=10, lr_init=0.02)
    assert dict(group.schedule.options)["lr_init"] == 0.02


def test_settings_are_checked_at_construction_through_the_shared_checker() -> None:
    with pytest.raises(ValueError, match=r"compat='keras' is not one of 'default', 'hf', 'timm'"):
        plan_of(compat="keras")
    with pytest.raises(ValueError, match=r"warmup_shape='lienar' is not one of .*did you mean warmup_shape='linear'"):
        plan_of(warmup_shape="lienar")
    with pytest.raises(ValueError, match=r"groups\['x'\]\.min_lr_ratio=2 is not allowed"):
        plan_of(groups={"x": {"min_lr_ratio": 2}})
    with pytest.raises(ValueError, match=r"decay='cosin' is not allowed.*did you mean decay='cosine'"):
        plan_of(decay="cosin")


def test_plan_and_group_schedule_pickle() -> None:
    plan = plan_of(warmup="5%", total="3ep", groups={"1": {"decay": "linear"}}, late_group_warmup=3)
    assert pickle.loads(pickle.dumps(plan)) == plan
    group = plan.resolve_group(index=0, j=1, name="pg2", base_lr=0.1, total=60)
    assert isinstance(group, GroupSchedule) and pickle.loads(pickle.dumps(group)) == group
