"""``compat="timm"``: timm's ``CosineLRScheduler`` stepped once per optimizer update.

timm works in absolute LRs; the multiplier here is ``timm_lr / base_lr`` for a group whose
initial LR is ``base_lr``. With the default ``base_lr=1.0`` the options ``lr_min`` and
``warmup_lr_init`` therefore read as ratios of each group's peak (the same multiplier for every
group). To reproduce a timm run exactly for one group, pass that group's LR as ``base_lr`` and
``lr_min`` / ``warmup_lr_init`` in absolute LRs as you would give them to timm. Noise
(``noise_range_t``) is not reproduced. This module does not import timm.
"""

from __future__ import annotations

import math
from typing import Any

from lightning_optkit._checks import as_float, as_int, fail
from lightning_optkit.schedules.registry import Context, Plan, register_shape

__all__ = ["timm_cosine"]


def _resolve(opts: dict[str, Any], ctx: Context) -> dict[str, Any]:
    base = as_float("base_lr", opts.get("base_lr", 1.0), low=0.0, low_open=True, example=1.0)
    lr_min = opts.get("lr_min")
    if lr_min is not None and ctx.min_lr_ratio != 0.0:
        raise fail("lr_min", lr_min, f"min_lr_ratio={ctx.min_lr_ratio} already sets the floor",
                   "give the floor once: min_lr_ratio (ratio) or lr_min (absolute, with base_lr)")
    lr_min = ctx.min_lr_ratio * base if lr_min is None else as_float("lr_min", lr_min, low=0.0, example=1e-6)
    warm_init = opts.get("warmup_lr_init")
    if warm_init is not None and ctx.warmup_start is not None:
        raise fail("warmup_lr_init", warm_init, f"warmup_start={ctx.warmup_start} already sets the warm-up start",
                   "give it once: warmup_start (ratio) or warmup_lr_init (absolute, with base_lr)")
    if warm_init is None:
        warm_init = 0.0 if ctx.warmup_start is None else ctx.warmup_start * base
    warm_init = as_float("warmup_lr_init", warm_init, low=0.0, example=1e-6)
    prefix = opts.get("warmup_prefix", False)
    if not isinstance(prefix, bool):
        raise fail("warmup_prefix", prefix, "expected True or False", "pass warmup_prefix=True or False")
    t_initial = opts.get("t_initial")
    if t_initial is None:
        t_initial = ctx.total_steps - ctx.warmup_steps if prefix else ctx.total_steps  # type: ignore[operator]
    t_initial = as_int("t_initial", t_initial, minimum=1, example=1000)
    cycle_mul = as_float("cycle_mul", opts.get("cycle_mul", 1.0), low=1.0, example=2.0)
    warmup = ctx.warmup_steps
    return {
        "t_initial": t_initial,
        "lr_min": lr_min,
        "warmup_lr_init": warm_init,
        "base_lr": base,
        "warmup_prefix": prefix,
        "cycle_mul": cycle_mul,
        "cycle_decay": as_float("cycle_decay", opts.get("cycle_decay", 1.0), low=0.0, high=1.0, low_open=True,
                                example=0.5),
        "cycle_limit": as_int("cycle_limit", opts.get("cycle_limit", 1), minimum=1, example=3),
        "k_decay": as_float("k_decay", opts.get("k_decay", 1.0), low=0.0, low_open=True, example=1.0),
        "_warm_slope": (base - warm_init) / warmup if warmup else 1.0,
    }


@register_shape(
    "cosine",
    compat="timm",
    options={"t_initial": None, "lr_min": None, "warmup_lr_init": None, "base_lr": 1.0, "warmup_prefix": False,
             "cycle_mul": 1.0, "cycle_decay": 1.0, "cycle_limit": 1, "k_decay": 1.0},
    resolve=_resolve,
    own_warmup=True,
    horizon_unless="t_initial",
    monotone=False,
    example={"warmup_prefix": True, "lr_min": 0.05, "warmup_lr_init": 0.01, "cycle_limit": 2, "cycle_decay": 0.5},
)
def timm_cosine(step: int, plan: Plan) -> float:
    """``timm.scheduler.CosineLRScheduler`` with ``t_in_epochs=False``, ``step_update(step)``.

    Mapping: ``warmup_steps -> warmup_t``; ``t_initial -> t_initial`` (default ``total_steps``, or
    ``total_steps - warmup_steps`` with ``warmup_prefix=True``); ``min_lr_ratio * base_lr`` or
    ``lr_min -> lr_min``; ``warmup_start * base_lr`` or ``warmup_lr_init -> warmup_lr_init``;
    ``warmup_prefix``, ``cycle_mul``, ``cycle_decay``, ``cycle_limit``, ``k_decay`` -> same names.
    """
    v = plan.values
    t = step
    if t < plan.warmup_steps:
        lr = v["warmup_lr_init"] + t * v["_warm_slope"]
    else:
        if v["warmup_prefix"]:
            t = t - plan.warmup_steps
        t_initial, mul = v["t_initial"], v["cycle_mul"]
        if mul != 1:
            i = math.floor(math.log(1 - t / t_initial * (1 - mul), mul))
            t_i = mul**i * t_initial
            t_curr = t - (1 - mul**i) / (1 - mul) * t_initial
        else:
            i = t // t_initial
            t_i = t_initial
            t_curr = t - (t_initial * i)
        if i < v["cycle_limit"]:
            lr_max = v["base_lr"] * v["cycle_decay"] ** i
            k = v["k_decay"]
            lr = v["lr_min"] + 0.5 * (lr_max - v["lr_min"]) * (1 + math.cos(math.pi * t_curr**k / t_i**k))
        else:
            lr = v["lr_min"]
    return lr / v["base_lr"]
