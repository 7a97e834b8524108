"""``compat="hf"``: Hugging Face transformers (5.x) schedules, value for value.

Each shape reproduces one ``transformers.optimization`` schedule as its ``LambdaLR`` multiplier at
every step, past ``num_training_steps`` included (where some of them rise again or drop to 0:
that is the anchor's behaviour, kept on purpose). Common mapping:
``warmup_steps -> num_warmup_steps``, ``total_steps -> num_training_steps``. The anchor's warm-up
is ``step / max(1, num_warmup_steps)``, so the first update runs at LR 0; ``warmup`` must stay
``"linear"`` and ``warmup_start`` unset. ``min_lr_ratio`` is accepted only where the anchor has a
floor (``cosine``, ``wsd``). This module does not import transformers.
"""

from __future__ import annotations

import math
from typing import Any

from lightning_optkit._checks import as_choice, as_float, as_int, fail
from lightning_optkit.schedules.registry import Context, Plan, register_shape

__all__ = [
    "hf_constant",
    "hf_cosine",
    "hf_cosine_restarts",
    "hf_cosine_warmup_with_min_lr",
    "hf_inverse_sqrt",
    "hf_linear",
    "hf_polynomial",
    "hf_wsd",
]


def _warm(step: int, plan: Plan) -> float:
    return float(step) / float(max(1, plan.warmup_steps))


def _common(ctx: Context, *, floor: bool) -> None:
    if ctx.warmup_start is not None:
        raise fail("warmup_start", ctx.warmup_start, "compat='hf' fixes the warm-up start (0, or min_lr_ratio "
                   "for wsd)", "remove warmup_start, or use compat='default' to choose the start")
    if not floor and ctx.min_lr_ratio != 0.0:
        raise fail("min_lr_ratio", ctx.min_lr_ratio, "this transformers schedule has no floor",
                   "remove min_lr_ratio, or use decay='cosine'/'wsd' with compat='hf', or compat='default'")


def _plain(opts: dict[str, Any], ctx: Context) -> dict[str, Any]:
    _common(ctx, floor=False)
    return {}


@register_shape("linear", compat="hf", resolve=_plain, own_warmup=True)
def hf_linear(step: int, plan: Plan) -> float:
    """``get_linear_schedule_with_warmup``: linear warm-up from 0, linear decay to 0 at T, then 0."""
    if step < plan.warmup_steps:
        return _warm(step, plan)
    total = plan.total_steps
    return max(0.0, float(total - step) / float(max(1, total - plan.warmup_steps)))  # type: ignore[operator]


def _resolve_cosine(opts: dict[str, Any], ctx: Context) -> dict[str, Any]:
    _common(ctx, floor=True)
    cycles = as_float("num_cycles", opts.get("num_cycles", 0.5), low=0.0, low_open=True, example=0.5)
    rate = opts.get("min_lr_rate")
    if rate is not None and ctx.min_lr_ratio != 0.0:
        raise fail("min_lr_rate", rate, f"min_lr_ratio={ctx.min_lr_ratio} already sets the floor",
                   "give the floor once: min_lr_ratio or min_lr_rate")
    rate = ctx.min_lr_ratio if rate is None else as_float("min_lr_rate", rate, low=0.0, high=1.0, example=0.1)
    return {"num_cycles": cycles, "min_lr_rate": rate}


@register_shape("cosine", compat="hf", options={"num_cycles": 0.5, "min_lr_rate": None},
                resolve=_resolve_cosine, own_warmup=True, example={"num_cycles": 0.5, "min_lr_rate": 0.1})
def hf_cosine(step: int, plan: Plan) -> float:
    """``get_cosine_schedule_with_warmup`` / ``get_cosine_with_min_lr_schedule_with_warmup``.

    Options: ``num_cycles`` -> ``num_cycles`` (0.5 = one half wave); ``min_lr_ratio`` (or the
    option ``min_lr_rate``) -> ``min_lr_rate``. Past T the cosine rises again, as in the anchor.
    """
    if step < plan.warmup_steps:
        return _warm(step, plan)
    values = plan.values
    total = plan.total_steps
    progress = float(step - plan.warmup_steps) / float(max(1, total - plan.warmup_steps))  # type: ignore[operator]
    factor = 0.5 * (1.0 + math.cos(math.pi * float(values["num_cycles"]) * 2.0 * progress))
    factor = factor * (1 - values["min_lr_rate"]) + values["min_lr_rate"]
    return max(0.0, factor)


def _resolve_cosine_shifted(opts: dict[str, Any], ctx: Context) -> dict[str, Any]:
    values = _resolve_cosine({k: v for k, v in opts.items() if k != "warmup_lr_rate"}, ctx)
    rate = opts.get("warmup_lr_rate")
    values["warmup_lr_rate"] = None if rate is None else as_float("warmup_lr_rate", rate, low=0.0, high=1.0,
                                                                   example=0.1)
    return values


@register_shape("cosine_warmup_with_min_lr", compat="hf",
                options={"num_cycles": 0.5, "min_lr_rate": None, "warmup_lr_rate": None},
                resolve=_resolve_cosine_shifted, own_warmup=True,
                example={"min_lr_rate": 0.1, "warmup_lr_rate": 0.05})
def hf_cosine_warmup_with_min_lr(step: int, plan: Plan) -> float:
    """``get_cosine_with_min_lr_schedule_with_warmup_lr_rate`` (``"cosine_warmup_with_min_lr"``).

    Options: ``num_cycles``, ``min_lr_rate`` (or ``min_lr_ratio``), ``warmup_lr_rate`` -> same
    names. The warm-up is ``(step + 1) / W`` (or ``warmup_lr_rate`` rising to 1 over ``W - 1``
    steps) and the decay progress is ``(step - W + 1) / (T - W)``, so neither 0 nor the peak
    of the plain cosine is used.
    """
    values = plan.values
    s, w, t = float(step), float(plan.warmup_steps), float(plan.total_steps)  # type: ignore[arg-type]
    if s < w:
        rate = values["warmup_lr_rate"]
        if rate is None:
            return (s + 1.0) / max(1.0, w)
        return rate + (1.0 - rate) * s / max(1, w - 1)
    progress = (s - w + 1.0) / max(1.0, t - w)
    factor = 0.5 * (1.0 + math.cos(math.pi * values["num_cycles"] * 2.0 * progress))
    factor = factor * (1 - values["min_lr_rate"]) + values["min_lr_rate"]
    return max(0.0, factor)


def _resolve_restarts(opts: dict[str, Any], ctx: Context) -> dict[str, Any]:
    _common(ctx, floor=False)
    return {"num_cycles": as_int("num_cycles", opts.get("num_cycles", 1), minimum=1, example=3)}


@register_shape("cosine_restarts", compat="hf", options={"num_cycles": 1}, resolve=_resolve_restarts,
                own_warmup=True, monotone=False, example={"num_cycles": 3})
def hf_cosine_restarts(step: int, plan: Plan) -> float:
    """``get_cosine_with_hard_restarts_schedule_with_warmup``: ``num_cycles`` -> ``num_cycles``; 0 from T on."""
    if step < plan.warmup_steps:
        return _warm(step, plan)
    total = plan.total_steps
    progress = float(step - plan.warmup_steps) / float(max(1, total - plan.warmup_steps))  # type: ignore[operator]
    if progress >= 1.0:
        return 0.0
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((float(plan.values["num_cycles"]) * progress) % 1.0))))


def _resolve_polynomial(opts: dict[str, Any], ctx: Context) -> dict[str, Any]:
    _common(ctx, floor=False)
    if opts.get("lr_init") is None:
        raise fail("lr_init", None, "decay='polynomial' with compat='hf' needs the optimizer's default LR "
                   "(transformers reads optimizer.defaults['lr']; the floor is lr_end / lr_init)",
                   "pass lr_init=<the lr given to the optimizer>, e.g. lr_init=3e-4")
    lr_init = as_float("lr_init", opts["lr_init"], low=0.0, low_open=True, example=3e-4)
    lr_end = as_float("lr_end", opts.get("lr_end", 1e-7), low=0.0, example=1e-7)
    if not lr_init > lr_end:
        raise fail("lr_end", lr_end, f"must be smaller than lr_init={lr_init}", "lower lr_end")
    power = as_float("power", opts.get("power", 1.0), low=0.0, low_open=True, example=2.0)
    return {"power": power, "lr_end": lr_end, "lr_init": lr_init}


@register_shape("polynomial", compat="hf", options={"power": 1.0, "lr_end": 1e-7, "lr_init": None},
                resolve=_resolve_polynomial, own_warmup=True,
                example={"power": 2.0, "lr_end": 1e-4, "lr_init": 1e-3})
def hf_polynomial(step: int, plan: Plan) -> float:
    """``get_polynomial_decay_schedule_with_warmup``: ``power``, ``lr_end`` -> same names.

    ``lr_init`` -> the anchor's ``optimizer.defaults["lr"]`` (required here). The multiplier is ``(lr_end + (lr_init - lr_end) * (1 - p) ** power) / lr_init``, and
    ``lr_end / lr_init`` past T.
    """
    values = plan.values
    if step < plan.warmup_steps:
        return _warm(step, plan)
    if step > plan.total_steps:  # type: ignore[operator]
        return values["lr_end"] / values["lr_init"]
    lr_range = values["lr_init"] - values["lr_end"]
    span = plan.total_steps - plan.warmup_steps  # type: ignore[operator]
    remaining = 1 - (step - plan.warmup_steps) / span
    return (lr_range * remaining ** values["power"] + values["lr_end"]) / values["lr_init"]


@register_shape("constant", compat="hf", resolve=_plain, own_warmup=True, requires_horizon=False)
def hf_constant(step: int, plan: Plan) -> float:
    """``get_constant_schedule_with_warmup`` (``get_constant_schedule`` with ``warmup_steps=0``)."""
    if step < plan.warmup_steps:
        return _warm(step, plan)
    return 1.0


def _resolve_inverse_sqrt(opts: dict[str, Any], ctx: Context) -> dict[str, Any]:
    _common(ctx, floor=False)
    timescale = opts.get("timescale")
    if timescale is None:
        timescale = ctx.warmup_steps or 10_000
    return {"timescale": as_int("timescale", timescale, minimum=1, example=1000)}


@register_shape("inverse_sqrt", compat="hf", options={"timescale": None}, resolve=_resolve_inverse_sqrt,
                own_warmup=True, requires_horizon=False, example={"timescale": 5})
def hf_inverse_sqrt(step: int, plan: Plan) -> float:
    """``get_inverse_sqrt_schedule``: ``timescale`` -> ``timescale`` (default W, or 10000 when W is 0)."""
    if step < plan.warmup_steps:
        return _warm(step, plan)
    timescale = plan.values["timescale"]
    return 1.0 / math.sqrt((step + (timescale - plan.warmup_steps)) / timescale)


def _wsd_warm_linear(p: float) -> float:
    return p


def _wsd_warm_cosine(p: float) -> float:
    return 0.5 * (1.0 - math.cos(math.pi * p))


def _wsd_warm_sqrt(p: float) -> float:
    return 1.0 - math.sqrt(1.0 - p)


def _wsd_decay_linear(p: float, cycles: float) -> float:
    return 1.0 - p


def _wsd_decay_cosine(p: float, cycles: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * float(cycles) * 2.0 * p))


def _wsd_decay_sqrt(p: float, cycles: float) -> float:
    return 1.0 - math.sqrt(p)


_WSD_WARMUPS = {"linear": _wsd_warm_linear, "cosine": _wsd_warm_cosine, "1-sqrt": _wsd_warm_sqrt}
_WSD_DECAYS = {"linear": _wsd_decay_linear, "cosine": _wsd_decay_cosine, "1-sqrt": _wsd_decay_sqrt}


def _resolve_wsd(opts: dict[str, Any], ctx: Context) -> dict[str, Any]:
    _common(ctx, floor=True)
    if opts.get("num_decay_steps") is None:
        raise fail("num_decay_steps", None, "decay='wsd' with compat='hf' needs the length of the decay phase",
                   "pass e.g. num_decay_steps=<10 % of total_steps>")
    decay = as_int("num_decay_steps", opts["num_decay_steps"], minimum=0, example=100)
    if opts.get("num_stable_steps") is not None:
        stable = as_int("num_stable_steps", opts["num_stable_steps"], minimum=0, example=1000)
    else:
        stable = ctx.total_steps - ctx.warmup_steps - decay  # type: ignore[operator]
        if stable < 0:
            raise fail("num_decay_steps", decay,
                       f"warm-up + decay must fit in total_steps={ctx.total_steps} (warmup_steps={ctx.warmup_steps})",
                       "shorten the decay or the warm-up")
    return {
        "num_decay_steps": decay,
        "num_stable_steps": opts.get("num_stable_steps"),
        "warmup_type": as_choice("warmup_type", opts.get("warmup_type", "linear"), list(_WSD_WARMUPS)),
        "decay_type": as_choice("decay_type", opts.get("decay_type", "cosine"), list(_WSD_DECAYS)),
        "num_cycles": as_float("num_cycles", opts.get("num_cycles", 0.5), low=0.0, low_open=True, example=0.5),
        "_stable": stable,
    }


@register_shape(
    "wsd",
    compat="hf",
    options={"num_decay_steps": None, "num_stable_steps": None, "warmup_type": "linear", "decay_type": "cosine",
             "num_cycles": 0.5},
    resolve=_resolve_wsd,
    own_warmup=True,
    horizon_unless="num_stable_steps",
    example={"num_decay_steps": 8, "decay_type": "1-sqrt", "warmup_type": "cosine"},
)
def hf_wsd(step: int, plan: Plan) -> float:
    """``get_wsd_schedule``: the options keep the anchor's names; ``min_lr_ratio`` -> ``min_lr_ratio``.

    ``num_stable_steps`` defaults to ``total_steps - warmup_steps - num_decay_steps``; when given it
    wins over ``total_steps`` (as in the anchor). The warm-up starts at ``min_lr_ratio``.
    """
    values = plan.values
    floor = plan.floor
    warmup = plan.warmup_steps
    if step < warmup:
        factor = _WSD_WARMUPS[values["warmup_type"]](float(step) / float(max(1, warmup)))
        return max(0.0, factor * (1.0 - floor) + floor)
    stable_end = warmup + values["_stable"]
    if step < stable_end:
        return 1.0
    if step < stable_end + values["num_decay_steps"]:
        progress = float(step - stable_end) / float(max(1, values["num_decay_steps"]))
        factor = _WSD_DECAYS[values["decay_type"]](progress, values["num_cycles"])
        return max(0.0, factor * (1.0 - floor) + floor)
    return floor
