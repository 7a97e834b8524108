"""Registry-driven tests: every registered shape is built, pickled, described and run through LambdaLR."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import pickle
from itertools import pairwise

import pytest
import torch

from lightning_optkit.schedules import (
    Schedule,
    build_schedule,
    get_shape,
    list_shapes,
    list_warmups,
    register_shape,
    register_warmup,
)

ALL = [(compat, name) for compat in ("default", "hf", "timm") for name in list_shapes(compat)]
W, T = 4, 30


def make(compat, name, **extra):
    spec = get_shape(name, compat)
    return build_schedule(warmup_steps=W, total_steps=T, decay=name, compat=compat, **dict(spec.example), **extra)


def test_registries_list_the_documented_names():
    assert list_shapes() == ["constant", "cosine", "cosine_restarts", "exponential", "inverse_sqrt", "linear",
                             "polynomial", "step", "wsd"]
    assert list_shapes("timm") == ["cosine"]
    assert list_warmups() == ["constant", "cosine", "exponential", "linear"]


@pytest.mark.parametrize(("compat", "name"), ALL)
def test_pickle_deepcopy_and_equality(compat, name):
    sched = make(compat, name)
    for clone in (pickle.loads(pickle.dumps(sched)), copy.deepcopy(sched)):
        assert clone == sched and hash(clone) == hash(sched)
        assert [clone(s) for s in range(T + 5)] == [sched(s) for s in range(T + 5)]


@pytest.mark.parametrize(("compat", "name"), ALL)
def test_values_are_finite_and_within_zero_one(compat, name):
    sched = make(compat, name)
    values = [sched(s) for s in range(3 * T)]
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in values)


@pytest.mark.parametrize(("compat", "name"), ALL)
def test_describe_is_json_and_rebuilds_the_schedule(compat, name):
    sched = make(compat, name)
    described = json.loads(json.dumps(sched.describe()))
    assert described["shape"] == name and described["compat"] == compat
    assert described["warmup"]["steps"] == W and described["total_steps"] == T
    assert described["requires_horizon"] == sched.requires_horizon
    assert set(described["options"]) == set(get_shape(name, compat).option_names)
    given = {k: v for k, v in dict(sched.options).items()}
    rebuilt = build_schedule(warmup_steps=W, total_steps=T, decay=name, compat=compat, **given)
    assert rebuilt == sched


@pytest.mark.parametrize(("compat", "name"), ALL)
def test_lambda_lr_applies_the_multiplier_to_each_group(compat, name):
    sched = make(compat, name)
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]], "lr": 0.02}])
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=sched)
    for step in range(T + 3):
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1 * sched(step), 0.02 * sched(step)],
                                                                    rel=1e-15, abs=0)
        opt.step()
        scheduler.step()
    # LambdaLR's state_dict copies the callable's __dict__: plain values, loadable with weights_only
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=make(compat, name))
    fresh.load_state_dict(state)
    assert fresh.lr_lambdas[0](7) == sched(7)


@pytest.mark.parametrize(("compat", "name"), ALL)
def test_horizon_requirement_matches_the_registry(compat, name):
    spec = get_shape(name, compat)
    options = dict(spec.example)
    if spec.horizon_unless:
        options.pop(spec.horizon_unless, None)
    if spec.requires_horizon:
        with pytest.raises(ValueError, match="total_steps=None"):
            build_schedule(warmup_steps=W, total_steps=None, decay=name, compat=compat, **options)
    else:
        sched = build_schedule(warmup_steps=W, total_steps=None, decay=name, compat=compat, **options)
        assert not sched.requires_horizon and 0.0 <= sched(10**6) <= 1.0


@pytest.mark.parametrize(("compat", "name"), ALL)
def test_unknown_option_lists_the_valid_ones(compat, name):
    valid = get_shape(name, compat).option_names
    with pytest.raises(ValueError, match="bogus") as info:
        make(compat, name, bogus=1)
    for option in valid:
        assert option in str(info.value)


@pytest.mark.parametrize("name", list_shapes())
def test_default_convention_peak_and_floor(name):
    spec = get_shape(name)
    sched = build_schedule(warmup_steps=W, total_steps=T, decay=name, min_lr_ratio=0.1, **dict(spec.example))
    assert 0.0 < sched(0) < 1.0 and sched(W) == 1.0
    if spec.requires_horizon:
        assert sched(T - 1) == 0.1 and sched(T) == 0.1 and sched(10 * T) == 0.1


@pytest.mark.parametrize("warmup", list_warmups())
def test_every_warmup_rises_to_the_exact_peak(warmup):
    sched = build_schedule(warmup_steps=8, total_steps=20, warmup=warmup, warmup_start=0.05)
    ramp = [sched(s) for s in range(9)]
    assert ramp[0] == pytest.approx(0.05) and ramp[-1] == 1.0
    assert all(a <= b for a, b in pairwise(ramp)) and max(ramp[:-1]) < 1.0


def test_replace_revalidates():
    sched = build_schedule(warmup_steps=4, total_steps=30)
    longer = dataclasses.replace(sched, total_steps=60)
    assert longer(59) == 0.0 and longer(29) > 0.0
    with pytest.raises(ValueError, match="warmup_steps=4"):
        dataclasses.replace(sched, total_steps=3)


def test_schedule_is_frozen_and_steps_must_be_ints():
    sched = build_schedule(warmup_steps=4, total_steps=30)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sched.total_steps = 5  # type: ignore[misc]
    assert isinstance(sched, Schedule)
    with pytest.raises(TypeError):
        sched(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step=-1"):
        sched(-1)
    assert sched(torch.tensor(3).item()) == sched(3)


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_shape("cosine")(lambda step, plan: 1.0)
    with pytest.raises(ValueError, match="already registered"):
        register_warmup("linear")(lambda q, start: 1.0)
