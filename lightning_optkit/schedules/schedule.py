"""The :class:`Schedule` value object and :func:`build_schedule`."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lightning_optkit.schedules import hf as _hf  # noqa: F401  (registers the hf shapes)
from lightning_optkit.schedules import shapes as _shapes  # noqa: F401  (registers the default shapes)
from lightning_optkit.schedules import timm as _timm  # noqa: F401  (registers the timm shapes)
from lightning_optkit.schedules import warmups as _warmups  # noqa: F401  (registers the warm-ups)
from lightning_optkit._checks import as_choice, as_float, as_int, fail
from lightning_optkit.schedules.registry import (
    COMPATS,
    Context,
    get_shape,
    get_warmup,
    horizonless_shapes,
    shape_table,
    warmup_table,
)

__all__ = ["Schedule", "build_schedule", "check_warmup"]

_SHAPES = shape_table()
_WARMUPS = warmup_table()

Compat = Literal["default", "hf", "timm"]


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(item) for item in value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def check_warmup(
    warmup_steps: int,
    total_steps: int | None,
    *,
    arg: str = "warmup_steps",
    value: Any = None,
    fix: str | None = None,
) -> None:
    """Refuse a warm-up that is not shorter than its schedule: the one warm-up-against-total check.

    :class:`Schedule` calls it on every build; the per-group plan calls it with the user's own
    spelling of the warm-up (``"2ep"``) once that is resolved to steps.

    Args:
        warmup_steps: the warm-up in optimizer steps.
        total_steps: the schedule's length in optimizer steps (``None``: open-ended, nothing to check).
        arg: the argument's name as the user wrote it.
        value: the warm-up as the user wrote it (``None``: ``warmup_steps`` itself).
        fix: the hint (``None``: fewer warm-up steps or a longer total).

    Raises:
        ValueError: when ``warmup_steps >= total_steps``.
    """
    if total_steps is None or warmup_steps < total_steps:
        return
    if value is None:
        shown, rule = warmup_steps, f"the warm-up must be shorter than total_steps={total_steps}"
    else:
        shown = value
        rule = f"it is {warmup_steps} steps, and the warm-up must be shorter than the schedule's {total_steps} steps"
    example = max(0, min(total_steps - 1, max(1, total_steps // 10)))
    raise fail(arg, shown, rule, fix or f"use fewer warm-up steps, e.g. warmup_steps={example}, or raise total_steps")


@dataclass(frozen=True)
class Schedule:
    """A learning-rate multiplier schedule: ``schedule(step) -> float``.

    ``step`` is the number of optimizer updates already made (0 for the first update); the result
    multiplies each parameter group's base (peak) LR. The object is a frozen, picklable dataclass
    holding only plain values, so it works as ``LambdaLR(optimizer, lr_lambda=schedule)``, survives
    ``pickle``/``copy.deepcopy`` and compares by value. ``dataclasses.replace(schedule,
    total_steps=...)`` re-validates. Build it with :func:`build_schedule`.

    Args:
        warmup_steps: warm-up length ``W`` in optimizer steps (>= 0).
        total_steps: horizon ``T`` in optimizer steps, or ``None`` for shapes that need none.
        decay: the decay shape's name (see ``list_shapes(compat)``).
        warmup: the warm-up shape's name (see ``list_warmups()``).
        warmup_start: warm-up start factor in [0, 1]; ``None`` = ``1 / (W + 1)``.
        min_lr_ratio: the floor, relative to each group's base LR, in [0, 1].
        compat: ``"default"``, ``"hf"`` (transformers) or ``"timm"`` conventions.
        options: the decay shape's options as sorted ``(name, value)`` pairs.
    """

    warmup_steps: int = 0
    total_steps: int | None = None
    decay: str = "cosine"
    warmup: str = "linear"
    warmup_start: float | None = None
    min_lr_ratio: float = 0.0
    compat: Compat = "default"
    options: tuple[tuple[str, Any], ...] = ()
    # derived at construction; plain values only, so LambdaLR's state_dict (which copies the
    # lr_lambda's __dict__) stays loadable with torch.load(weights_only=True)
    _values: dict[str, Any] = field(init=False, repr=False, compare=False)
    _start: float = field(init=False, repr=False, compare=False)
    _last: int | None = field(init=False, repr=False, compare=False)
    _needs_total: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compat = as_choice("compat", self.compat, COMPATS)
        spec = get_shape(self.decay, compat)
        warm = get_warmup(self.warmup)
        steps_w = as_int("warmup_steps", self.warmup_steps, minimum=0, example=100)
        total = None if self.total_steps is None else as_int("total_steps", self.total_steps, minimum=1, example=1000)
        floor = as_float("min_lr_ratio", self.min_lr_ratio, low=0.0, high=1.0, example=0.1)
        start = None if self.warmup_start is None else as_float("warmup_start", self.warmup_start, low=0.0,
                                                                 high=1.0, example=0.01)
        if isinstance(self.options, Mapping):
            pairs = list(self.options.items())
        else:
            pairs = [tuple(pair) for pair in self.options]
        opts = {str(key): _freeze(value) for key, value in pairs}
        unknown = sorted(set(opts) - set(spec.option_names))
        if unknown:
            valid = spec.option_names
            raise fail(unknown[0], opts[unknown[0]],
                       f"decay={spec.name!r} (compat={compat!r}) takes "
                       + (f"the options {valid}" if valid else "no options"),
                       f"remove {unknown} or use one of {valid}" if valid else f"remove {unknown}")
        needs_total = spec.requires_horizon and not (spec.horizon_unless and opts.get(spec.horizon_unless) is not None)
        if needs_total and total is None:
            hint = f" or set {spec.horizon_unless}" if spec.horizon_unless else ""
            free = horizonless_shapes(compat)
            raise fail("total_steps", None, f"decay={spec.name!r} (compat={compat!r}) needs the horizon",
                       f"pass total_steps (optimizer steps of the whole run){hint}"
                       + (f", or use a shape without a horizon: {free}" if free else ""))
        check_warmup(steps_w, total)
        if spec.own_warmup and self.warmup != "linear":
            raise fail("warmup", self.warmup, f"compat={compat!r} reproduces its anchor's own linear warm-up",
                       "use warmup='linear' (the default) or compat='default' for other warm-up shapes")
        if start == 0.0 and warm.positive_start and steps_w > 0:
            raise fail("warmup_start", start, f"warmup={warm.name!r} grows geometrically and needs a start > 0",
                       "pass e.g. warmup_start=0.01, or use warmup='linear' to start at 0")
        ctx = Context(steps_w, total, floor, start, warm.name)
        values = spec.resolve(dict(opts), ctx) if spec.resolve else {**dict(spec.defaults), **opts}
        last = None
        if compat == "default" and needs_total and total is not None:
            last = total - 1 if total - steps_w >= 2 else total
        setattr_ = object.__setattr__
        setattr_(self, "compat", compat)
        setattr_(self, "warmup_steps", steps_w)
        setattr_(self, "total_steps", total)
        setattr_(self, "min_lr_ratio", floor)
        setattr_(self, "warmup_start", start)
        setattr_(self, "options", tuple(sorted(opts.items())))
        setattr_(self, "_values", values)
        setattr_(self, "_start", start if start is not None else 1.0 / (steps_w + 1))
        setattr_(self, "_last", last)
        setattr_(self, "_needs_total", needs_total)

    def __call__(self, step: int) -> float:
        """The LR multiplier for the update made after ``step`` optimizer updates.

        Args:
            step: optimizer updates already made (0 for the first update), an ``int`` >= 0.
        """
        s = operator.index(step)
        if s < 0:
            raise fail("step", step, "expected the number of optimizer updates made, >= 0", "pass a step >= 0")
        spec = _SHAPES[(self.compat, self.decay)]
        if spec.own_warmup:
            return float(spec.fn(s, self))
        if s < self.warmup_steps:
            return _WARMUPS[self.warmup].fn(s / self.warmup_steps, self._start)
        floor = self.min_lr_ratio
        if self._last is not None and s >= self._last:
            return floor
        factor = spec.fn(s, self)
        if factor >= 1.0:
            return 1.0
        return min(1.0, max(floor, floor + (1.0 - floor) * factor))

    @property
    def floor(self) -> float:
        """The floor ``min_lr_ratio`` (read by the shape functions)."""
        return self.min_lr_ratio

    @property
    def start(self) -> float:
        """The effective warm-up start factor: ``warmup_start`` or ``1 / (warmup_steps + 1)``."""
        return self._start

    @property
    def values(self) -> dict[str, Any]:
        """The decay shape's options with defaults and derived values filled in (do not mutate)."""
        return self._values

    @property
    def requires_horizon(self) -> bool:
        """Whether this schedule needs ``total_steps`` (``False`` for shapes without a horizon)."""
        return self._needs_total

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable description: shape, warm-up, floor, horizon and resolved options."""
        return {
            "shape": self.decay,
            "compat": self.compat,
            "warmup": {
                "shape": self.warmup,
                "steps": self.warmup_steps,
                "start": self(0) if self.warmup_steps > 0 else None,
            },
            "total_steps": self.total_steps,
            "min_lr_ratio": self.min_lr_ratio,
            "requires_horizon": self.requires_horizon,
            "options": {key: _plain(value) for key, value in self._values.items() if not key.startswith("_")},
        }


def build_schedule(
    *,
    warmup_steps: int,
    total_steps: int | None,
    decay: str = "cosine",
    warmup: str = "linear",
    warmup_start: float | None = None,
    min_lr_ratio: float = 0.0,
    compat: Compat = "default",
    **shape_options: Any,
) -> Schedule:
    """Build a validated :class:`Schedule`.

    Args:
        warmup_steps: warm-up length in optimizer steps (>= 0).
        total_steps: the horizon in optimizer steps; ``None`` is allowed for shapes that need none
            (``constant``, ``inverse_sqrt``, ``exponential``, ``step``).
        decay: decay shape, one of ``list_shapes(compat)``.
        warmup: warm-up shape, one of ``list_warmups()`` (``compat="default"`` only).
        warmup_start: warm-up start factor in [0, 1]; ``None`` starts at ``1 / (warmup_steps + 1)``
            so no update runs at LR 0. Pass ``0`` to start from 0.
        min_lr_ratio: the floor relative to each group's base LR, in [0, 1].
        compat: ``"default"`` (this package's convention), ``"hf"`` (Hugging Face transformers,
            value for value) or ``"timm"`` (``timm`` ``CosineLRScheduler`` stepped per update).
        **shape_options: options of the decay shape (see ``docs/schedules.md``).

    Returns:
        The schedule: ``schedule(step) -> float``.

    Raises:
        ValueError: naming the argument, the value, what is allowed and a fix.

    Example:
        >>> sched = build_schedule(warmup_steps=3, total_steps=10, decay="linear")
        >>> [round(sched(s), 3) for s in (0, 2, 3, 9, 50)]
        [0.25, 0.75, 1.0, 0.0, 0.0]
    """
    return Schedule(
        warmup_steps=warmup_steps,
        total_steps=total_steps,
        decay=decay,
        warmup=warmup,
        warmup_start=warmup_start,
        min_lr_ratio=min_lr_ratio,
        compat=compat,
        options=tuple(sorted(shape_options.items())),
    )
