"""Warm-up shapes of the default convention.

Each shape maps the warm-up progress ``q = step / warmup_steps`` (in [0, 1) during the warm-up)
and the start factor ``start`` to a multiplier that equals ``start`` at ``q = 0``, never
decreases, and stays below 1; the first update after the warm-up runs at exactly 1.

The start factor is ``warmup_start`` when given, else ``1 / (warmup_steps + 1)``: one linear
increment, so the linear warm-up runs at ``(step + 1) / (warmup_steps + 1)`` and no update runs
at LR 0 unless ``warmup_start=0`` is asked for.
"""

from __future__ import annotations

import math

from lightning_optkit.schedules.registry import register_warmup

__all__ = ["constant_warmup", "cosine_warmup", "exponential_warmup", "linear_warmup"]


@register_warmup("linear")
def linear_warmup(q: float, start: float) -> float:
    """Straight line from ``start`` to 1: ``start + (1 - start) * q``."""
    return start + (1.0 - start) * q


@register_warmup("cosine")
def cosine_warmup(q: float, start: float) -> float:
    """Half cosine from ``start`` to 1, flat at both ends: ``start + (1 - start) * (1 - cos(pi q)) / 2``."""
    return start + (1.0 - start) * 0.5 * (1.0 - math.cos(math.pi * q))


@register_warmup("exponential", positive_start=True)
def exponential_warmup(q: float, start: float) -> float:
    """Geometric growth from ``start`` to 1 (the same ratio every step): ``start ** (1 - q)``."""
    return start ** (1.0 - q)


@register_warmup("constant")
def constant_warmup(q: float, start: float) -> float:
    """Hold ``start`` for the whole warm-up, then jump to 1."""
    return start
