"""AutoPrecision's option groups: the loss scaler, the probe and the fallback ladder.

Each group is a small frozen dataclass that checks itself once, at construction, through
:mod:`lightning_optkit._checks`; the code that uses a group (``DynamicGradScaler``, the probe's
recorder, the collapse detector) reads it and never checks again. From YAML, LightningCLI
(jsonargparse) turns a group into a nested mapping::

    plugins:
      - class_path: lightning_optkit.AutoPrecision
        init_args:
          scaler: {init_scale: 65536.0, hysteresis: 2}
          probe_plan: {steps: 6}
          fallback_policy: {patience: 20}

Errors name the argument as it is written there (``scaler.init_scale``, ``probe_plan.steps``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from lightning_optkit._checks import as_float, as_int, fail

__all__ = ["FallbackPolicy", "ProbePlan", "ScalerConfig", "as_group"]

_Group = TypeVar("_Group", "ScalerConfig", "ProbePlan", "FallbackPolicy")


def _check_bool(arg: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise fail(arg, value, "expected true or false", f"pass {arg}=True or {arg}=False")
    return value


def _store(group: Any, name: str, value: Any) -> None:
    object.__setattr__(group, name, value)  # a frozen dataclass normalises its own fields once


@dataclass(frozen=True)
class ScalerConfig:
    """The fp16 loss scaler's settings (``DynamicGradScaler``; DeepSpeed/Megatron-style).

    Args:
        init_scale: Initial loss scale.
        growth_factor: Scale multiplier after ``growth_interval`` clean steps (> 1).
        backoff_factor: Scale multiplier on an overflow once the hysteresis is used up, in (0, 1).
        growth_interval: Consecutive clean steps before the scale grows.
        hysteresis: Overflows tolerated before the scale backs off (1 = every overflow, as
            ``torch.amp.GradScaler``; DeepSpeed and Megatron use 2).
        min_scale: Floor of the loss scale.
        max_scale: Ceiling of the loss scale.
        consecutive_hysteresis: Restore the hysteresis after every clean step, so only
            consecutive overflows use it up.
    """

    init_scale: float = 2.0**16
    growth_factor: float = 2.0
    backoff_factor: float = 0.5
    growth_interval: int = 2000
    hysteresis: int = 2
    min_scale: float = 1.0
    max_scale: float = 2.0**24
    consecutive_hysteresis: bool = False

    def __post_init__(self) -> None:
        for name in ("init_scale", "min_scale", "max_scale"):
            _store(self, name, as_float(f"scaler.{name}", getattr(self, name), low=0.0, low_open=True,
                                        example=2.0**16 if name == "init_scale" else 1.0))
        if self.min_scale > self.max_scale:
            raise fail("scaler.min_scale", self.min_scale, f"it is above scaler.max_scale={self.max_scale!r}",
                       "use min_scale <= max_scale, such as min_scale=1.0 and max_scale=2**24")
        _store(self, "growth_factor", as_float("scaler.growth_factor", self.growth_factor, low=1.0,
                                               low_open=True, example=2.0))
        _store(self, "backoff_factor", as_float("scaler.backoff_factor", self.backoff_factor, low=0.0,
                                                high=1.0, low_open=True, high_open=True, example=0.5))
        _store(self, "growth_interval", as_int("scaler.growth_interval", self.growth_interval, minimum=1,
                                               example=2000))
        _store(self, "hysteresis", as_int("scaler.hysteresis", self.hysteresis, minimum=1, example=2))
        _check_bool("scaler.consecutive_hysteresis", self.consecutive_hysteresis)
        if not self.min_scale <= self.init_scale <= self.max_scale:
            warnings.warn(f"scaler.init_scale={self.init_scale!r} lies outside [min_scale={self.min_scale!r}, "
                          f"max_scale={self.max_scale!r}]; starting from {self.start_scale!r}",
                          UserWarning, stacklevel=3)

    @property
    def start_scale(self) -> float:
        """``init_scale`` clamped into ``[min_scale, max_scale]``."""
        return min(max(self.init_scale, self.min_scale), self.max_scale)


@dataclass(frozen=True)
class ProbePlan:
    """How the probe times the candidate precisions in ``mode="auto"``.

    Args:
        warmup_steps: Untimed steps the first time each candidate runs (later switches: one).
        steps: Timed steps per candidate, spread over the rounds.
        rounds: Visits per candidate (interleaved, ABBA order, ``32-true`` first).
        margin: Half precision must be this much faster than fp32 to be kept (0.03 = 3%).
        reject_factor: Stop probing a candidate after two consecutive steps (not counting the
            first after a switch) slower than this many fp32 median steps (single process).
    """

    warmup_steps: int = 2
    steps: int = 6
    rounds: int = 2
    margin: float = 0.03
    reject_factor: float = 2.0

    def __post_init__(self) -> None:
        _store(self, "warmup_steps", as_int("probe_plan.warmup_steps", self.warmup_steps, minimum=1, example=2))
        _store(self, "steps", as_int("probe_plan.steps", self.steps, minimum=1, example=6))
        _store(self, "rounds", as_int("probe_plan.rounds", self.rounds, minimum=1, example=2))
        _store(self, "margin", as_float("probe_plan.margin", self.margin, low=0.0, high=1.0, high_open=True,
                                        example=0.03))
        _store(self, "reject_factor", as_float("probe_plan.reject_factor", self.reject_factor, low=1.0,
                                               low_open=True, example=2.0))


@dataclass(frozen=True)
class FallbackPolicy:
    """When fp16 loss scaling counts as collapsed (the fallback ladder's trigger).

    Args:
        patience: Consecutive skipped steps at ``min_scale`` that trigger the fallback.
        skip_rate: Skip rate over ``window`` steps above which the fallback triggers
            (``1.0`` switches this rule off).
        window: Steps over which the skip rate is measured.
    """

    patience: int = 20
    skip_rate: float = 0.5
    window: int = 100

    def __post_init__(self) -> None:
        _store(self, "patience", as_int("fallback_policy.patience", self.patience, minimum=1, example=20))
        _store(self, "skip_rate", as_float("fallback_policy.skip_rate", self.skip_rate, low=0.0, high=1.0,
                                           low_open=True, example=0.5))
        _store(self, "window", as_int("fallback_policy.window", self.window, minimum=1, example=100))


def as_group(arg: str, value: Any, group: type[_Group]) -> _Group:
    """Return ``value`` as an option group: ``None`` gives the defaults, a mapping its fields.

    Args:
        arg: the argument's name as the user wrote it (``"scaler"``).
        value: ``None``, an instance of ``group`` or a mapping of its fields (as a dict from YAML).
        group: the option group's class.

    Returns:
        The option group.
    """
    if value is None:
        return group()
    if isinstance(value, group):
        return value
    names = [f.name for f in fields(group)]
    if isinstance(value, Mapping):
        unknown = [key for key in value if key not in names]
        if unknown:
            raise fail(arg, dict(value), f"{group.__name__} has no field {unknown[0]!r}; its fields are "
                       + ", ".join(names), f"drop or rename {unknown[0]!r}")
        return group(**value)
    raise fail(arg, value, f"expected a {group.__name__} or a mapping of its fields",
               f"pass e.g. {arg}={group.__name__}({names[0]}=...) or {arg}={{{names[0]!r}: ...}}")
