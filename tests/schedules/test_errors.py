"""Bad input is refused at construction with the argument, the value, the rule and a fix."""

from __future__ import annotations

import re

import pytest

from lightning_optkit.schedules import build_schedule


def build(**kwargs):
    base = {"warmup_steps": 10, "total_steps": 100}
    base.update(kwargs)
    return build_schedule(**base)


@pytest.mark.parametrize(("kwargs", "pieces"), [
    ({"warmup_steps": -1}, ["warmup_steps=-1", ">= 0", "Fix:"]),
    ({"warmup_steps": 2.5}, ["warmup_steps=2.5", "integer", "Fix:"]),
    ({"warmup_steps": 10.0}, ["warmup_steps=10.0", "integer"]),
    ({"warmup_steps": True}, ["warmup_steps=True", "integer"]),
    ({"warmup_steps": "10"}, ["warmup_steps='10'", "integer"]),
    ({"total_steps": 0}, ["total_steps=0", ">= 1"]),
    ({"total_steps": 99.5}, ["total_steps=99.5", "integer"]),
    ({"warmup_steps": 100}, ["warmup_steps=100", "shorter than total_steps=100", "Fix:"]),
    ({"warmup_steps": 500}, ["warmup_steps=500", "shorter than total_steps=100"]),
    ({"min_lr_ratio": 1.5}, ["min_lr_ratio=1.5", "[0.0, 1.0]", "Fix:"]),
    ({"min_lr_ratio": -0.1}, ["min_lr_ratio=-0.1", "[0.0, 1.0]"]),
    ({"min_lr_ratio": float("nan")}, ["min_lr_ratio=nan"]),
    ({"warmup_start": 2.0}, ["warmup_start=2.0", "[0.0, 1.0]"]),
    ({"decay": "cosin"}, ["decay='cosin'", "'wsd'", "did you mean decay='cosine'?"]),
    ({"warmup": "quadratic"}, ["warmup='quadratic'", "'linear'", "'exponential'"]),
    ({"compat": "torch"}, ["compat='torch'", "'default'", "'hf'", "'timm'"]),
    ({"total_steps": None}, ["total_steps=None", "decay='cosine'", "needs the horizon", "'inverse_sqrt'", "'step'"]),
    ({"warmup": "exponential", "warmup_start": 0.0}, ["warmup_start=0.0", "start > 0"]),
    ({"power": 2}, ["power=2", "decay='cosine'", "takes no options"]),
    ({"decay": "polynomial", "pwr": 2}, ["pwr=2", "['power']"]),
    ({"decay": "polynomial", "power": 0}, ["power=0", "(0.0, inf)"]),
    ({"decay": "exponential"}, ["gamma", "half_life", "exactly one"]),
    ({"decay": "exponential", "gamma": 0.9, "half_life": 10}, ["exactly one"]),
    ({"decay": "exponential", "gamma": 1.5}, ["gamma=1.5", "(0.0, 1.0]"]),
    ({"decay": "exponential", "half_life": -3}, ["half_life=-3"]),
    ({"decay": "step"}, ["milestones=None", "milestones=[1000, 2000]"]),
    ({"decay": "step", "milestones": [50, 40]}, ["milestones=[50, 40]", "strictly increasing", "[40, 50]"]),
    ({"decay": "step", "milestones": [5, 40]}, ["milestones=[5, 40]", "after the warm-up"]),
    ({"decay": "step", "milestones": [40, 100]}, ["milestones=[40, 100]", "< total_steps=100"]),
    ({"decay": "step", "milestones": [40.5]}, ["milestones[0]=40.5", "integer"]),
    ({"decay": "step", "milestones": 40}, ["milestones=40", "list"]),
    ({"decay": "inverse_sqrt", "timescale": 0}, ["timescale=0"]),
    ({"decay": "wsd", "decay_steps": 91}, ["decay_steps=91", "90 steps after the warm-up"]),
    ({"decay": "wsd", "decay_steps": 0}, ["decay_steps=0", ">= 1"]),
    ({"decay": "wsd", "decay_fraction": 1.5}, ["decay_fraction=1.5", "(0.0, 1.0]"]),
    ({"decay": "wsd", "decay_fraction": 0.95}, ["decay_fraction=0.95", "95 steps"]),
    ({"decay": "wsd", "decay_steps": 5, "decay_fraction": 0.1}, ["one way only"]),
    ({"decay": "wsd", "decay_shape": "sqrt"}, ["decay_shape='sqrt'", "'1-sqrt'"]),
    ({"decay": "cosine_restarts", "num_cycles": 0}, ["num_cycles=0", ">= 1"]),
    ({"decay": "cosine_restarts", "num_cycles": 91}, ["num_cycles=91", "at least one of the 90 steps"]),
    ({"decay": "cosine_restarts", "num_cycles": 5, "cycle_mul": 10.0}, ["num_cycles=5", "cycle_mul=10.0"]),
    ({"decay": "cosine_restarts", "cycle_decay": 0}, ["cycle_decay=0", "(0.0, 1.0]"]),
])
def test_default_convention_errors(kwargs, pieces):
    with pytest.raises(ValueError) as info:
        build(**kwargs)
    message = str(info.value)
    for piece in pieces:
        assert piece in message, (piece, message)


@pytest.mark.parametrize(("kwargs", "pieces"), [
    ({"decay": "linear", "warmup": "cosine"}, ["warmup='cosine'", "compat='hf'", "warmup='linear'"]),
    ({"decay": "linear", "warmup_start": 0.1}, ["warmup_start=0.1", "compat='default'"]),
    ({"decay": "linear", "min_lr_ratio": 0.1}, ["min_lr_ratio=0.1", "no floor"]),
    ({"decay": "cosine", "min_lr_ratio": 0.1, "min_lr_rate": 0.2}, ["min_lr_rate=0.2", "once"]),
    ({"decay": "polynomial"}, ["lr_init=None", "optimizer"]),
    ({"decay": "polynomial", "lr_init": 1e-3, "lr_end": 1e-2}, ["lr_end=0.01", "smaller than lr_init=0.001"]),
    ({"decay": "wsd"}, ["num_decay_steps=None"]),
    ({"decay": "wsd", "num_decay_steps": 95}, ["num_decay_steps=95", "fit in total_steps=100"]),
    ({"decay": "wsd", "num_decay_steps": 5, "decay_type": "exp"}, ["decay_type='exp'", "'1-sqrt'"]),
    ({"decay": "wsd", "num_decay_steps": 5, "warmup_type": "exp"}, ["warmup_type='exp'"]),
    ({"decay": "step"}, ["decay='step'", "compat='hf'", "exists under compat='default'"]),
    ({"decay": "cosine_restarts", "num_cycles": 1.5}, ["num_cycles=1.5", "integer"]),
])
def test_hf_errors(kwargs, pieces):
    with pytest.raises(ValueError) as info:
        build(compat="hf", **kwargs)
    message = str(info.value)
    for piece in pieces:
        assert piece in message, (piece, message)


@pytest.mark.parametrize(("kwargs", "pieces"), [
    ({"decay": "linear"}, ["decay='linear'", "['cosine']"]),
    ({"lr_min": 0.1, "min_lr_ratio": 0.1}, ["lr_min=0.1", "once"]),
    ({"warmup_lr_init": 0.1, "warmup_start": 0.1}, ["warmup_lr_init=0.1", "once"]),
    ({"cycle_mul": 0.5}, ["cycle_mul=0.5", "[1.0, inf)"]),
    ({"cycle_limit": 0}, ["cycle_limit=0"]),
    ({"base_lr": 0}, ["base_lr=0"]),
    ({"t_initial": 0}, ["t_initial=0"]),
    ({"warmup_prefix": "yes"}, ["warmup_prefix='yes'", "True or False"]),
    ({"k_decay": -1}, ["k_decay=-1"]),
])
def test_timm_errors(kwargs, pieces):
    with pytest.raises(ValueError) as info:
        build(compat="timm", **kwargs)
    message = str(info.value)
    for piece in pieces:
        assert piece in message, (piece, message)


def test_every_message_names_a_fix():
    cases = [{"warmup_steps": -1}, {"decay": "nope"}, {"decay": "step"}, {"min_lr_ratio": 3}]
    for kwargs in cases:
        with pytest.raises(ValueError, match=re.escape("Fix:")):
            build(**kwargs)


def test_missing_horizon_names_the_ways_out_per_convention():
    with pytest.raises(ValueError) as info:
        build_schedule(warmup_steps=1, total_steps=None, decay="linear", compat="hf")
    assert "['constant', 'inverse_sqrt']" in str(info.value)
    with pytest.raises(ValueError, match="or set t_initial"):
        build_schedule(warmup_steps=1, total_steps=None, decay="cosine", compat="timm")
    with pytest.raises(ValueError, match="or set num_stable_steps"):
        build_schedule(warmup_steps=1, total_steps=None, decay="wsd", compat="hf", num_decay_steps=3)


def test_typo_in_warmup_suggests_the_name():
    with pytest.raises(ValueError, match="did you mean warmup='linear'"):
        build(warmup="lienar")
