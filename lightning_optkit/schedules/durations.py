"""Durations of schedule phases: optimizer steps, epochs, or shares of the run.

A duration is written as:

* an ``int``: optimizer steps (``500``);
* a ``float`` in ``[0, 1)``: a fraction of the total (``0.05``);
* a string: ``"500st"`` (steps), ``"3ep"`` (epochs, fractions allowed: ``"0.5ep"``), ``"5%"``
  (percent of the total), or a plain number (``"500"``, ``"0.05"``).

``parse_duration`` checks the syntax at construction time; ``resolve_duration`` turns a parsed
duration into optimizer steps once the run's horizon is known. Fractions, percentages and epochs
are rounded up (``ceil``), as Hugging Face's Trainer does for a fractional warm-up.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, Union

__all__ = ["Duration", "DurationSpec", "parse_duration", "resolve_duration"]

DurationSpec = Union[int, float, str]

_PATTERN = re.compile(r"^\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>st|steps?|ep|epochs?|%)?\s*$")
_UNITS = {None: None, "st": "steps", "step": "steps", "steps": "steps", "ep": "epochs",
          "epoch": "epochs", "epochs": "epochs", "%": "fraction"}
_HINT = "an int of optimizer steps (500), a fraction in [0, 1) (0.05), or a string '500st', '3ep' or '5%'"


@dataclass(frozen=True)
class Duration:
    """A parsed duration.

    Attributes:
        unit: ``"steps"``, ``"epochs"`` or ``"fraction"`` (of the total).
        value: The amount in that unit.
    """

    unit: Literal["steps", "epochs", "fraction"]
    value: float

    def __str__(self) -> str:
        if self.unit == "steps":
            return f"{int(self.value)}st"
        if self.unit == "epochs":
            return f"{self.value:g}ep"
        return f"{self.value * 100:g}%"


def parse_duration(value: DurationSpec, *, name: str = "duration") -> Duration:
    """Parse a duration, raising ``ValueError`` that names ``name`` when it is not one.

    Args:
        value: The duration as written by the user.
        name: The argument's name, for the error message.
        where: Prefix of the error message (which optimizer and group).
    """
    if isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not a duration; use {_HINT}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name}={value!r} is negative; use a number of steps >= 0")
        return Duration("steps", float(value))
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}={value!r} must be a finite number >= 0; use {_HINT}")
        if value >= 1.0:
            raise ValueError(
                f"{name}={value!r} is a float >= 1: a float means a fraction of the total and must"
                f" lie in [0, 1); for {value:g} optimizer steps write the int {int(value)}"
                if value.is_integer()
                else f"{name}={value!r} is a float >= 1, but a float means a fraction of the total in"
                " [0, 1) and steps must be whole; use " + _HINT
            )
        return Duration("fraction", value)
    if isinstance(value, str):
        match = _PATTERN.match(value.lower())
        if match is None:
            raise ValueError(f"{name}={value!r} does not parse as a duration; use {_HINT}")
        number, unit = match.group("num"), _UNITS[match.group("unit")]
        if unit is None:  # a plain number given as a string
            return parse_duration(float(number) if "." in number else int(number), name=name)
        amount = float(number)
        if unit == "steps":
            if not amount.is_integer():
                raise ValueError(f"{name}={value!r}: steps must be a whole number, such as '500st'")
            return Duration("steps", amount)
        if unit == "fraction":
            if amount > 100:
                raise ValueError(f"{name}={value!r} is more than 100%; use a percentage in [0, 100]")
            return Duration("fraction", amount / 100.0)
        return Duration("epochs", amount)
    raise ValueError(f"{name}={value!r} of type {type(value).__name__} is not a duration; use {_HINT}")


def _ceil(x: float) -> int:
    return int(math.ceil(x - 1e-9))


def resolve_duration(
    duration: Duration, *, total: int | None, steps_per_epoch: int | None, name: str = "duration", where: str = ""
) -> int:
    """Turn ``duration`` into optimizer steps.

    Args:
        duration: A parsed duration.
        total: The total steps the fraction refers to (``None`` if unknown).
        steps_per_epoch: Optimizer steps per epoch (``None`` if unknown, e.g. an iterable data set).
        name: The argument's name, for the error message.
        where: Prefix of the error message (which optimizer and group).
    """
    if duration.unit == "steps":
        return int(duration.value)
    if duration.unit == "fraction":
        if total is None:
            raise ValueError(
                f"{where}{name}={duration} is a share of the run's length, which is unknown (an iterable"
                f" data set has no length, so max_epochs gives no step count). Give {name} in steps"
                f" (such as {name}=500), or set Trainer(max_steps=...) or WarmupDecay(total=<steps>)"
            )
        return _ceil(duration.value * total)
    if steps_per_epoch is None:
        raise ValueError(
            f"{where}{name}={duration} is in epochs, but the steps per epoch are unknown (an iterable data"
            f" set has no length); give {name} in steps such as '500st'"
        )
    return _ceil(duration.value * steps_per_epoch)
