"""The option groups check themselves once, normalise their numbers and stay frozen."""

from __future__ import annotations

import dataclasses
import math
import pickle

import pytest

from lightning_optkit.precision.options import FallbackPolicy, ProbePlan, ScalerConfig, as_group


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: ScalerConfig(init_scale=0.0), r"scaler.init_scale=0.0 is not allowed: expected a finite number"),
        (lambda: ScalerConfig(max_scale=math.inf), r"scaler.max_scale=inf is not allowed"),
        (lambda: ScalerConfig(min_scale=8.0, max_scale=4.0), r"scaler.min_scale=8.0 .* above scaler.max_scale=4.0"),
        (lambda: ScalerConfig(growth_factor=1.0), r"scaler.growth_factor=1.0 is not allowed"),
        (lambda: ScalerConfig(backoff_factor=1.0), r"scaler.backoff_factor=1.0 is not allowed"),
        (lambda: ScalerConfig(growth_interval=0), r"scaler.growth_interval=0 is not allowed"),
        (lambda: ScalerConfig(hysteresis="2"), r"scaler.hysteresis='2' is not allowed"),
        (lambda: ScalerConfig(consecutive_hysteresis=1), r"scaler.consecutive_hysteresis=1 is not allowed"),
        (lambda: ProbePlan(steps=0), r"probe_plan.steps=0 is not allowed"),
        (lambda: ProbePlan(margin=-0.1), r"probe_plan.margin=-0.1 is not allowed"),
        (lambda: ProbePlan(reject_factor=math.inf), r"probe_plan.reject_factor=inf is not allowed"),
        (lambda: FallbackPolicy(skip_rate=1.5), r"fallback_policy.skip_rate=1.5 is not allowed"),
        (lambda: FallbackPolicy(window=None), r"fallback_policy.window=None is not allowed"),
    ],
)
def test_a_group_names_its_bad_field(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_numbers_are_normalised_and_groups_are_frozen_and_picklable():
    config = ScalerConfig(init_scale=2**8, min_scale=1, max_scale=2**10)
    assert config.init_scale == 256.0 and isinstance(config.init_scale, float)
    assert isinstance(ProbePlan(margin=0).margin, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.init_scale = 1.0  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(config)) == config


def test_an_initial_scale_outside_the_bounds_warns_and_starts_clamped():
    with pytest.warns(UserWarning, match=r"scaler.init_scale=65536.0 lies outside \[min_scale=1.0, max_scale=1024.0\]"):
        config = ScalerConfig(max_scale=1024.0)
    assert config.start_scale == 1024.0


def test_as_group_takes_none_an_instance_or_a_mapping():
    plan = ProbePlan(steps=3)
    assert as_group("probe_plan", None, ProbePlan) == ProbePlan()
    assert as_group("probe_plan", plan, ProbePlan) is plan
    assert as_group("probe_plan", {"steps": 3}, ProbePlan) == plan
    with pytest.raises(ValueError, match=r"probe_plan=\{'step': 3\} is not allowed: ProbePlan has no field 'step'"):
        as_group("probe_plan", {"step": 3}, ProbePlan)
    with pytest.raises(ValueError, match=r"probe_plan=\[3\] is not allowed: expected a ProbePlan or a mapping"):
        as_group("probe_plan", [3], ProbePlan)
    with pytest.raises(ValueError, match=r"fallback_policy=ScalerConfig\(.*expected a FallbackPolicy"):
        as_group("fallback_policy", ScalerConfig(), FallbackPolicy)
