"""Decay shapes of the default convention.

Each function returns the decay factor ``f`` in [0, 1] for a step after the warm-up; the schedule
turns it into ``floor + (1 - floor) * f`` (``floor`` = ``min_lr_ratio``). Shapes with a horizon
use the progress ``p = (step - W) / (T - W - 1)``: ``p = 0`` at the first update after the
warm-up (which therefore runs at exactly 1), ``p = 1`` at the last scheduled update
``step == T - 1`` (which runs at exactly the floor); past the horizon the floor holds.
"""

from __future__ import annotations

import bisect
import math
from itertools import pairwise
from typing import Any

from lightning_optkit._checks import (
    as_choice,
    as_float,
    as_int,
    as_int_list,
    fail,
)
from lightning_optkit.schedules.registry import Context, Plan, register_shape

__all__ = [
    "WSD_DECAY_SHAPES",
    "constant",
    "cosine",
    "cosine_restarts",
    "exponential",
    "inverse_sqrt",
    "linear",
    "polynomial",
    "step_decay",
    "wsd",
]



def _linear_tail(p: float) -> float:
    return 1.0 - p


def _cosine_tail(p: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * p))


def _sqrt_tail(p: float) -> float:
    return 1.0 - math.sqrt(p)


# decay shapes of the final phase of ``wsd``: progress p in [0, 1] -> factor from 1 to 0
WSD_DECAY_SHAPES = {"linear": _linear_tail, "cosine": _cosine_tail, "1-sqrt": _sqrt_tail}


def _progress(step: int, plan: Plan) -> float:
    span = plan.total_steps - plan.warmup_steps - 1  # type: ignore[operator]
    return 0.0 if span <= 0 else (step - plan.warmup_steps) / span


# ----------------------------------------------------------------------------------------------
@register_shape("constant", requires_horizon=False)
def constant(step: int, plan: Plan) -> float:
    """Hold the peak after the warm-up (the floor is not used)."""
    return 1.0


@register_shape("linear")
def linear(step: int, plan: Plan) -> float:
    """Straight line from the peak to the floor: ``1 - p``."""
    return 1.0 - _progress(step, plan)


@register_shape("cosine")
def cosine(step: int, plan: Plan) -> float:
    """Half cosine from the peak to the floor: ``(1 + cos(pi p)) / 2``."""
    return _cosine_tail(_progress(step, plan))


def _resolve_polynomial(opts: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {"power": as_float("power", opts.get("power", 1.0), low=0.0, low_open=True, example=2.0)}


@register_shape("polynomial", options={"power": 1.0}, resolve=_resolve_polynomial, example={"power": 2.0})
def polynomial(step: int, plan: Plan) -> float:
    """Polynomial from the peak to the floor: ``(1 - p) ** power`` (``power=1`` is linear)."""
    return (1.0 - _progress(step, plan)) ** plan.values["power"]


def _resolve_restarts(opts: dict[str, Any], ctx: Context) -> dict[str, Any]:
    cycles = as_int("num_cycles", opts.get("num_cycles", 1), minimum=1, example=3)
    mul = as_float("cycle_mul", opts.get("cycle_mul", 1.0), low=0.0, low_open=True, example=2.0)
    decay = as_float("cycle_decay", opts.get("cycle_decay", 1.0), low=0.0, high=1.0, low_open=True, example=0.5)
    span = ctx.total_steps - ctx.warmup_steps  # type: ignore[operator]
    if mul == 1.0:
        offsets = [i * span // cycles for i in range(cycles + 1)]
    else:
        whole = mul**cycles - 1.0
        offsets = [round(span * (mul**i - 1.0) / whole) for i in range(cycles + 1)]
    if any(b <= a for a, b in pairwise(offsets)):
        raise fail("num_cycles", cycles,
                   f"every cycle needs at least one of the {span} steps after the warm-up "
                   f"(cycle_mul={mul} gives cycle starts {offsets[:-1]})",
                   "use fewer cycles, a cycle_mul closer to 1, or a longer total_steps")
    return {"num_cycles": cycles, "cycle_mul": mul, "cycle_decay": decay, "_offsets": tuple(offsets)}


@register_shape(
    "cosine_restarts",
    options={"num_cycles": 1, "cycle_mul": 1.0, "cycle_decay": 1.0},
    resolve=_resolve_restarts,
    monotone=False,
    example={"num_cycles": 3, "cycle_mul": 2.0, "cycle_decay": 0.5},
)
def cosine_restarts(step: int, plan: Plan) -> float:
    """Cosine cycles (SGDR): cycle ``i`` starts at ``cycle_decay ** i``; the last one ends at the floor.

    The steps after the warm-up are split into ``num_cycles`` cycles whose lengths grow by
    ``cycle_mul``. A cycle of ``L`` steps runs the cosine at ``p = k / L`` (the restart takes the
    place of its floor, so no step is spent at the floor mid-run); the last cycle runs at
    ``p = k / (L - 1)`` so the last scheduled step is the floor.
    """
    offsets = plan.values["_offsets"]
    t = step - plan.warmup_steps
    i = bisect.bisect_right(offsets, t) - 1
    length = offsets[i + 1] - offsets[i]
    if i < len(offsets) - 2:
        p = (t - offsets[i]) / length
    else:
        p = 0.0 if length <= 1 else (t - offsets[i]) / (length - 1)
    return plan.values["cycle_decay"] ** i * _cosine_tail(p)


def _resolve_exponential(opts: dict[str, Any], ctx: Context) -> dict[str, Any]:
    gamma, half_life = opts.get("gamma"), opts.get("half_life")
    if gamma is None and half_life is None and ctx.min_lr_ratio > 0:
        return _exponential_to_floor(ctx)
    if (gamma is None) == (half_life is None):
        raise fail("gamma/half_life", (gamma, half_life),
                   "decay='exponential' needs exactly one of gamma (factor per step, in (0, 1]) "
                   "and half_life (steps until the LR halves, > 0), or min_lr_ratio > 0 (the rate "
                   "then reaches the floor at the last scheduled step)",
                   "pass e.g. gamma=0.999, half_life=1000 or min_lr_ratio=0.01")
    if gamma is not None:
        rate = as_float("gamma", gamma, low=0.0, high=1.0, low_open=True, example=0.999)
    else:
        life = as_float("half_life", half_life, low=0.0, low_open=True, example=1000)
        rate = 0.5 ** (1.0 / life)
    return {"gamma": gamma, "half_life": half_life, "_rate": rate}


def _exponential_to_floor(ctx: Context) -> dict[str, Any]:
    """The rate that takes the LR from the peak to the floor at the last scheduled step ``T - 1``."""
    if ctx.total_steps is None:
        raise fail("total_steps", None,
                   "decay='exponential' with only min_lr_ratio derives its rate from the floor and the "
                   "horizon, which is unknown",
                   "pass total_steps (or a trainer horizon: max_steps / max_epochs), or gamma / half_life")
    span = ctx.total_steps - ctx.warmup_steps - 1
    rate = 1.0 if span <= 0 or ctx.min_lr_ratio >= 1.0 else ctx.min_lr_ratio ** (1.0 / span)
    return {"gamma": None, "half_life": None, "_rate": rate, "_to_floor": True}


@register_shape(
    "exponential",
    options={"gamma": None, "half_life": None},
    resolve=_resolve_exponential,
    requires_horizon=False,
    example={"half_life": 7},
)
def exponential(step: int, plan: Plan) -> float:
    """Exponential decay: ``gamma ** (step - W)`` (``gamma = 0.5 ** (1 / half_life)``).

    With neither option (and ``min_lr_ratio > 0``) the multiplier itself is ``rate ** (step - W)``
    with ``rate = floor ** (1 / (T - W - 1))``: the last scheduled step runs at exactly the floor.
    """
    values = plan.values
    if values.get("_to_floor"):
        floor = plan.floor
        if floor >= 1.0:
            return 1.0
        if plan.total_steps is not None and step >= plan.total_steps - 1:
            return 0.0
        return max(0.0, (values["_rate"] ** (step - plan.warmup_steps) - floor) / (1.0 - floor))
    return values["_rate"] ** (step - plan.warmup_steps)


def _resolve_step(opts: dict[str, Any], ctx: Context) -> dict[str, Any]:
    if opts.get("milestones") is None:
        raise fail("milestones", None, "decay='step' needs the steps at which the LR is multiplied by gamma",
                   "pass e.g. milestones=[1000, 2000]")
    milestones = as_int_list("milestones", opts["milestones"], minimum=0)
    if milestones[0] <= ctx.warmup_steps:
        raise fail("milestones", list(milestones),
                   f"every milestone must come after the warm-up (> warmup_steps={ctx.warmup_steps})",
                   "drop the early milestones or shorten the warm-up")
    if ctx.total_steps is not None and milestones[-1] >= ctx.total_steps:
        raise fail("milestones", list(milestones),
                   f"every milestone must be reached (< total_steps={ctx.total_steps})",
                   "drop the milestones past the horizon or raise total_steps")
    gamma = as_float("gamma", opts.get("gamma", 0.1), low=0.0, high=1.0, low_open=True, example=0.1)
    return {"milestones": milestones, "gamma": gamma}


@register_shape(
    "step",
    options={"milestones": None, "gamma": 0.1},
    resolve=_resolve_step,
    requires_horizon=False,
    example={"milestones": [12, 20], "gamma": 0.5},
)
def step_decay(step: int, plan: Plan) -> float:
    """Piecewise constant: multiplied by ``gamma`` at each of the ``milestones`` (absolute steps)."""
    return plan.values["gamma"] ** bisect.bisect_right(plan.values["milestones"], step)


def _resolve_inverse_sqrt(opts: dict[str, Any], ctx: Context) -> dict[str, Any]:
    timescale = opts.get("timescale")
    if timescale is None:
        timescale = ctx.warmup_steps or 10_000
    return {"timescale": as_float("timescale", timescale, low=0.0, low_open=True, example=1000)}


@register_shape(
    "inverse_sqrt",
    options={"timescale": None},
    resolve=_resolve_inverse_sqrt,
    requires_horizon=False,
    example={"timescale": 4},
)
def inverse_sqrt(step: int, plan: Plan) -> float:
    """Inverse square root: ``1 / sqrt(1 + (step - W) / timescale)``; ``timescale`` defaults to W (or 10000)."""
    return 1.0 / math.sqrt(1.0 + (step - plan.warmup_steps) / plan.values["timescale"])


def _resolve_wsd(opts: dict[str, Any], ctx: Context) -> dict[str, Any]:
    steps, fraction = opts.get("decay_steps"), opts.get("decay_fraction")
    total = ctx.total_steps
    after_warmup = total - ctx.warmup_steps  # type: ignore[operator]
    if steps is not None and fraction is not None:
        raise fail("decay_steps/decay_fraction", (steps, fraction), "give the decay length one way only",
                   "keep either decay_steps (steps) or decay_fraction (fraction of total_steps)")
    if steps is not None:
        length = as_int("decay_steps", steps, minimum=1, example=max(1, after_warmup // 5))
    else:
        frac = as_float("decay_fraction", 0.2 if fraction is None else fraction, low=0.0, high=1.0,
                        low_open=True, example=0.2)
        length = max(1, round(frac * total))  # type: ignore[operator]
    if length > after_warmup:
        raise fail("decay_steps" if steps is not None else "decay_fraction", steps if steps is not None else fraction,
                   f"the decay ({length} steps) must fit in the {after_warmup} steps after the warm-up "
                   f"(total_steps={total}, warmup_steps={ctx.warmup_steps})",
                   "shorten the decay or the warm-up")
    shape = as_choice("decay_shape", opts.get("decay_shape", "1-sqrt"), list(WSD_DECAY_SHAPES))
    return {"decay_steps": steps, "decay_fraction": fraction, "decay_shape": shape, "_length": length}


@register_shape(
    "wsd",
    options={"decay_steps": None, "decay_fraction": None, "decay_shape": "1-sqrt"},
    resolve=_resolve_wsd,
    example={"decay_fraction": 0.3, "decay_shape": "cosine"},
)
def wsd(step: int, plan: Plan) -> float:
    """Warm-up, stable at the peak, then a final decay to the floor (linear, cosine or 1-sqrt).

    The decay covers the last ``decay_steps`` steps (or ``round(decay_fraction * total_steps)``,
    20 % by default) and ends at the floor on the last scheduled step.
    """
    length = plan.values["_length"]
    begin = plan.total_steps - length  # type: ignore[operator]
    if step < begin or length <= 1:
        return 1.0
    return WSD_DECAY_SHAPES[plan.values["decay_shape"]]((step - begin) / (length - 1))
