"""The one argument checker of every component: ``ValueError`` naming the argument, the value,
what is allowed and a fix.

Every public class checks its settings at construction through these functions, so a wrong value
or a wrong type (``lr="3e-4"``, ``candidates="adamw"``) reads the same everywhere and never
surfaces as a bare ``TypeError`` in the middle of training.
"""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Iterable, Mapping
from itertools import pairwise
from typing import Any

__all__ = [
    "as_choice",
    "as_float",
    "as_int",
    "as_int_list",
    "fail",
]


def fail(arg: str, value: Any, rule: str, fix: str) -> ValueError:
    """Build the error for a rejected setting.

    Args:
        arg: the argument's name as the user wrote it.
        value: the rejected value.
        rule: what is allowed.
        fix: how to fix it.

    Returns:
        A ``ValueError`` ready to raise.
    """
    return ValueError(f"{arg}={value!r} is not allowed: {rule}. Fix: {fix}.")


def as_int(arg: str, value: Any, *, minimum: int = 0, example: int = 100) -> int:
    """Return ``value`` as an ``int`` at least ``minimum`` or raise.

    Booleans and floats (even ``100.0``) are rejected: steps are counted, not measured.
    """
    if isinstance(value, (bool, float)):
        raise fail(arg, value, f"expected an integer number of optimizer steps >= {minimum}",
                   f"pass a whole number, e.g. {arg}={max(example, minimum)}")
    try:
        number = operator.index(value)
    except TypeError:
        raise fail(arg, value, f"expected an integer >= {minimum}",
                   f"pass a whole number, e.g. {arg}={max(example, minimum)}") from None
    if number < minimum:
        raise fail(arg, value, f"expected an integer >= {minimum}",
                   f"pass a whole number >= {minimum}, e.g. {arg}={max(example, minimum)}")
    return int(number)


def as_float(
    arg: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    example: float = 0.5,
) -> float:
    """Return ``value`` as a finite ``float`` inside the given interval or raise."""
    lo_b = "(" if low_open else "["
    hi_b = ")" if high_open else "]"
    if low is None:
        lo_b = "("
    if high is None:
        hi_b = ")"
    interval = f"{lo_b}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi_b}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(arg, value, f"expected a number in {interval}", f"pass e.g. {arg}={example}")
    number = float(value)
    inside = math.isfinite(number)
    if inside and low is not None:
        inside = number > low if low_open else number >= low
    if inside and high is not None:
        inside = number < high if high_open else number <= high
    if not inside:
        raise fail(arg, value, f"expected a finite number in {interval}", f"pass e.g. {arg}={example}")
    return number


def as_choice(arg: str, value: Any, choices: Iterable[str], *, aliases: Mapping[str, str] | None = None,
              fix: str | None = None) -> str:
    """Return ``value`` if it is one of ``choices`` or raise listing them.

    Args:
        arg: the argument's name as the user wrote it.
        value: the value to check.
        choices: the allowed strings.
        aliases: common misspellings mapped to the intended choice, for the hint.
        fix: the hint when no close choice is found (default: pick one of them).

    Returns:
        ``value``, unchanged.
    """
    names = list(choices)
    if isinstance(value, str) and value in names:
        return value
    listed = ", ".join(map(repr, names))
    guess = (aliases or {}).get(value) if isinstance(value, str) else None
    if guess is None and isinstance(value, str):
        close = difflib.get_close_matches(value, names, n=1)
        guess = close[0] if close else None
    if guess is not None:
        hint = f"did you mean {arg}={guess!r}?"
    else:
        hint = fix or f"pick one of them, e.g. {arg}={names[0]!r}"
    raise ValueError(f"{arg}={value!r} is not one of {listed}; {hint}")


def as_int_list(arg: str, value: Any, *, minimum: int = 0) -> tuple[int, ...]:
    """Return ``value`` as a strictly increasing tuple of ints >= ``minimum`` or raise."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise fail(arg, value, "expected a list of step numbers", f"pass e.g. {arg}=[1000, 2000]")
    if isinstance(value, tuple):
        value = list(value)  # shown as the user wrote it
    items = tuple(as_int(f"{arg}[{i}]", item, minimum=minimum) for i, item in enumerate(value))
    if not items:
        raise fail(arg, value, "expected at least one step", f"pass e.g. {arg}=[1000, 2000]")
    if any(b <= a for a, b in pairwise(items)):
        raise fail(arg, value, "expected strictly increasing steps",
                   f"sort them and drop duplicates: {arg}={sorted(set(items))}")
    return items
