"""The plan behind ``WarmupDecay``: what each parameter group's schedule is, with no Trainer in it.

``ScheduleSpec`` holds what the user asked for (durations still symbolic: ``"5%"``, ``"3ep"``,
``"auto"``); ``resolve_schedule`` turns it into a :class:`~lightning_optkit.schedules.Schedule`
once the horizon and the optimizer's ``beta2`` are known. Everything here is plain, picklable and
checked eagerly, so a bad setting fails when the callback is built, not mid-training.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lightning_optkit.durations import Duration, DurationSpec, parse_duration, resolve_duration
from lightning_optkit.schedules import Schedule, build_schedule, list_shapes, list_warmups

__all__ = [
    "ScheduleSpec",
    "OVERRIDE_KEYS",
    "untuned_warmup",
    "resolve_total",
    "resolve_schedule",
    "late_group_factor",
    "preview_rows",
    "format_rows",
]

OVERRIDE_KEYS = ("warmup", "decay", "warmup_shape", "warmup_start", "min_lr_ratio", "options")
_COMPATS = ("default", "hf", "timm")


def untuned_warmup(beta2: float) -> int:
    """The untuned warm-up ``2 / (1 - beta2)`` of Ma & Yarats (2021), rounded to whole steps.

    ``beta2 = 0.999`` gives 2000 steps (pytorch_warmup truncates the float to 1999).
    """
    if not 0.0 < beta2 < 1.0:
        raise ValueError(f"beta2={beta2!r} must lie in (0, 1) for warmup='auto'")
    return int(round(2.0 / (1.0 - beta2)))


@dataclass(frozen=True)
class ScheduleSpec:
    """One group's schedule as asked for, durations unresolved.

    Attributes:
        warmup: The warm-up duration, or ``"auto"`` for ``2 / (1 - beta2)`` steps.
        decay: A registered decay shape name.
        warmup_shape: A registered warm-up shape name.
        warmup_start: The warm-up's starting multiplier (``None``: the shape's default).
        min_lr_ratio: The floor, relative to the group's own base LR.
        compat: ``"default"``, ``"hf"`` or ``"timm"``.
        options: Extra options of the decay shape, as sorted ``(name, value)`` pairs.
    """

    warmup: Duration | str = Duration("steps", 0.0)
    decay: str = "cosine"
    warmup_shape: str = "linear"
    warmup_start: float | None = None
    min_lr_ratio: float = 0.0
    compat: str = "default"
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    @classmethod
    def create(
        cls,
        *,
        warmup: DurationSpec | Duration = 0,
        decay: str = "cosine",
        warmup_shape: str = "linear",
        warmup_start: float | None = None,
        min_lr_ratio: float = 0.0,
        compat: str = "default",
        options: Mapping[str, Any] | None = None,
        where: str = "",
    ) -> ScheduleSpec:
        """Validate the arguments and build a spec; ``where`` prefixes the argument names."""
        parsed: Duration | str
        if isinstance(warmup, Duration) or warmup == "auto":
            parsed = warmup
        else:
            parsed = parse_duration(warmup, name=f"{where}warmup")
        if compat in _COMPATS and decay not in list_shapes(compat):
            raise ValueError(
                f"{where}decay={decay!r} is not a known shape under compat={compat!r}; choose one of"
                f" {', '.join(list_shapes(compat))}"
            )
        if warmup_shape not in list_warmups():
            raise ValueError(
                f"{where}warmup_shape={warmup_shape!r} is not a known warm-up shape; choose one of"
                f" {', '.join(list_warmups())}"
            )
        if compat not in _COMPATS:
            raise ValueError(f"{where}compat={compat!r} must be one of {', '.join(_COMPATS)}")
        if isinstance(min_lr_ratio, bool) or not isinstance(min_lr_ratio, (int, float)) or not (
            0.0 <= float(min_lr_ratio) <= 1.0
        ):
            raise ValueError(
                f"{where}min_lr_ratio={min_lr_ratio!r} must lie in [0, 1]: the floor is a share of"
                " each group's own base LR (0.1 ends at 10% of the peak)"
            )
        if warmup_start is not None and not (0.0 <= float(warmup_start) <= 1.0):
            raise ValueError(
                f"{where}warmup_start={warmup_start!r} must lie in [0, 1] (a share of the peak LR)"
            )
        spec = cls(
            warmup=parsed,
            decay=decay,
            warmup_shape=warmup_shape,
            warmup_start=None if warmup_start is None else float(warmup_start),
            min_lr_ratio=float(min_lr_ratio),
            compat=compat,
            options=tuple(sorted(dict(options or {}).items())),
        )
        spec.check_options(where)
        return spec

    def check_options(self, where: str = "") -> None:
        """Build the schedule once on a stand-in horizon so unknown or bad options fail now."""
        stand_in = {"lr_init": 1.0} if self.compat == "hf" and self.decay == "polynomial" else None
        try:
            self.build(warmup_steps=0, total_steps=1_000_000, defaults=stand_in)
        except ValueError as err:
            raise ValueError(f"{where}{err}") from None

    def with_overrides(self, override: Mapping[str, Any], where: str) -> ScheduleSpec:
        """A copy with the keys of ``override`` (a subset of :data:`OVERRIDE_KEYS`) replaced."""
        unknown = sorted(set(override) - set(OVERRIDE_KEYS))
        if unknown:
            raise ValueError(
                f"{where} has unknown keys {unknown}; a group override may set"
                f" {', '.join(OVERRIDE_KEYS)}"
            )
        merged = dict(
            warmup=self.warmup,
            decay=self.decay,
            warmup_shape=self.warmup_shape,
            warmup_start=self.warmup_start,
            min_lr_ratio=self.min_lr_ratio,
            compat=self.compat,
            options=dict(self.options),
        )
        merged.update(override)
        return ScheduleSpec.create(**merged, where=f"{where}.")

    def build(
        self, *, warmup_steps: int, total_steps: int | None, defaults: Mapping[str, Any] | None = None
    ) -> Schedule:
        """The schedule for resolved step counts; ``defaults`` fill options the user left unset."""
        kwargs: dict[str, Any] = {**dict(defaults or {}), **dict(self.options)}
        if self.warmup_start is not None:
            kwargs["warmup_start"] = self.warmup_start
        return build_schedule(
            warmup_steps=warmup_steps,
            total_steps=total_steps,
            decay=self.decay,
            warmup=self.warmup_shape,
            min_lr_ratio=self.min_lr_ratio,
            compat=self.compat,
            **kwargs,
        )


def resolve_total(
    total: Duration | None, *, horizon: float | int | None, steps_per_epoch: int | None
) -> int | None:
    """The schedule's total steps.

    Args:
        total: The user's total (``None``: the trainer's horizon; a fraction: of the horizon).
        horizon: The trainer's estimated optimizer steps (``inf``/``-1``/``None`` if unknown).
        steps_per_epoch: Optimizer steps per epoch, if known.
    """
    known = horizon is not None and horizon != -1 and not math.isinf(horizon)
    if total is None:
        return int(horizon) if known else None
    return resolve_duration(
        total, total=int(horizon) if known else None, steps_per_epoch=steps_per_epoch, name="total"
    )


def resolve_schedule(
    spec: ScheduleSpec,
    *,
    total: int | None,
    steps_per_epoch: int | None,
    beta2: float | None,
    where: str = "",
    defaults: Mapping[str, Any] | None = None,
) -> tuple[Schedule, int]:
    """Resolve ``spec`` into a schedule and its warm-up length in steps.

    Args:
        spec: What the user asked for.
        total: The schedule's total steps (``None``: unknown).
        steps_per_epoch: Optimizer steps per epoch, for durations in epochs.
        beta2: The optimizer's beta2, for ``warmup="auto"``.
        where: Prefix for error messages (which optimizer and group).
        defaults: Shape options taken from the optimizer where the user gave none (such as the
            ``lr_init`` of Hugging Face's polynomial schedule).
    """
    if spec.warmup == "auto":
        if beta2 is None:
            raise ValueError(
                f"{where}warmup='auto' uses 2 / (1 - beta2) of Adam-type optimizers, but this"
                " optimizer has no betas; give the warm-up in steps or as a share, such as '5%'"
            )
        warmup = untuned_warmup(beta2)
        if total is not None and warmup >= total:
            warnings.warn(
                f"{where}warmup='auto' gives {warmup} steps (2 / (1 - beta2), beta2={beta2}) but the"
                f" schedule has only {total}; warming up for {max(total - 1, 0)} steps instead."
                " Set warmup to a share such as '5%' for short runs.",
                UserWarning,
                stacklevel=2,
            )
            warmup = max(total - 1, 0)
    else:
        warmup = resolve_duration(
            spec.warmup, total=total, steps_per_epoch=steps_per_epoch, name=f"{where}warmup"
        )
    if total is None:
        try:
            return spec.build(warmup_steps=warmup, total_steps=None, defaults=defaults), warmup
        except ValueError as err:
            if "total_steps=None" not in str(err):
                raise ValueError(f"{where}{err}") from None
            raise ValueError(
                f"{where}decay={spec.decay!r} needs the run's length, which cannot be computed (an"
                " iterable data set with no length and no max_steps); set Trainer(max_steps=...)"
                " or WarmupDecay(total=<steps>), or use a shape that needs no horizon ('constant',"
                " 'inverse_sqrt', 'exponential', 'step')"
            ) from None
    if warmup > total:
        raise ValueError(
            f"{where}warmup={spec.warmup} is {warmup} steps, longer than the schedule's {total}"
            " steps; use a shorter warm-up (a share such as '5%' adapts to the run) or a longer total"
        )
    if warmup == total:
        warnings.warn(
            f"{where}warmup={spec.warmup} is as long as the schedule ({total} steps): it would never"
            f" decay; warming up for {max(total - 1, 0)} steps so the last update reaches the peak."
            " Use a shorter warm-up (such as '5%') for a decay phase.",
            UserWarning,
            stacklevel=2,
        )
        warmup = max(total - 1, 0)
    try:
        return spec.build(warmup_steps=warmup, total_steps=total, defaults=defaults), warmup
    except ValueError as err:
        raise ValueError(f"{where}{err}") from None


def late_group_factor(step: int, *, start: int, warmup: int) -> float:
    """Linear warm-up factor of a group added at step ``start`` (1 after ``warmup`` steps).

    The first update of the new group runs at ``1 / (warmup + 1)`` of its scheduled LR, never 0.
    """
    if warmup <= 0 or step >= start + warmup:
        return 1.0
    return (max(step - start, 0) + 1) / (warmup + 1)


def preview_rows(
    schedules: list[Schedule],
    base_lrs: list[float],
    names: list[str],
    *,
    total: int,
    marks: tuple[int, ...] = (),
    max_rows: int = 200,
) -> list[dict[str, float]]:
    """A table of LRs over ``total`` steps (plus a few past it), at most about ``max_rows`` rows.

    Rows are evenly spaced steps plus every step in ``marks`` (the warm-up's end, the last
    scheduled step) and the first step past the horizon, so the hand-offs are always shown.
    """
    every = max(1, math.ceil(total / max(1, max_rows)))
    steps = set(range(0, total, every)) | {0, total - 1, total, total + 1}
    for mark in marks:
        steps |= {s for s in (mark - 1, mark, mark + 1) if s >= 0}
    rows = []
    for step in sorted(steps):
        row: dict[str, float] = {"step": step}
        for schedule, base, name in zip(schedules, base_lrs, names):
            row[name] = base * schedule(step)
        rows.append(row)
    return rows


def format_rows(rows: list[dict[str, float]]) -> str:
    """Render :func:`preview_rows` as a plain-text table."""
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["  ".join(f"{k:>12}" for k in keys)]
    for row in rows:
        cells = [f"{int(row['step']):>12d}"] + [f"{row[k]:>12.4e}" for k in keys[1:]]
        lines.append("  ".join(cells))
    return "\n".join(lines)
