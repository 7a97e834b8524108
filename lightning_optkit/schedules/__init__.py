"""Pure learning-rate schedule math: warm-up + decay multipliers, no Trainer involved.

``build_schedule(...)`` returns a frozen, picklable :class:`Schedule`; ``schedule(step)`` is the
multiplier of each parameter group's base LR for the update made after ``step`` optimizer updates.
Decay shapes and warm-up shapes live in registries (``list_shapes(compat)``, ``list_warmups()``).

Example:
    >>> from lightning_optkit.schedules import build_schedule
    >>> sched = build_schedule(warmup_steps=2, total_steps=6, decay="cosine", min_lr_ratio=0.1)
    >>> [round(sched(s), 4) for s in range(8)]
    [0.3333, 0.6667, 1.0, 0.775, 0.325, 0.1, 0.1, 0.1]
"""

from __future__ import annotations

from lightning_optkit.schedules.registry import (
    ShapeSpec,
    WarmupSpec,
    get_shape,
    get_warmup,
    list_shapes,
    list_warmups,
    register_shape,
    register_warmup,
)
from lightning_optkit.schedules.schedule import Schedule, build_schedule

__all__ = [
    "Schedule",
    "ShapeSpec",
    "WarmupSpec",
    "build_schedule",
    "get_shape",
    "get_warmup",
    "list_shapes",
    "list_warmups",
    "register_shape",
    "register_warmup",
]
