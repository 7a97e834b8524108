"""One parameter group's schedule as the user asked for it, and its resolution into a :class:`Schedule`.

``ScheduleSpec`` holds the request with its durations still symbolic (``"5%"``, ``"3ep"``,
``"auto"``); :meth:`ScheduleSpec.resolve` turns it into a
:class:`~lightning_optkit.schedules.Schedule` once the horizon and the optimizer's ``beta2`` are
known. Everything here is plain, picklable and checked eagerly, so a bad setting fails when the
callback is built, not mid-training.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lightning_optkit._checks import as_choice, as_float
from lightning_optkit.schedules.durations import Duration, DurationSpec, parse_duration, resolve_duration
from lightning_optkit.schedules.registry import COMPATS, list_warmups
from lightning_optkit.schedules.schedule import Schedule, build_schedule, check_warmup

__all__ = ["ScheduleSpec", "OVERRIDE_KEYS", "untuned_warmup"]

OVERRIDE_KEYS = ("warmup", "decay", "warmup_shape", "warmup_start", "min_lr_ratio", "options")
_FIX_LONG_WARMUP = "use a shorter warm-up (a share such as '5%' adapts to the run) or a longer total"


def untuned_warmup(beta2: float) -> int:
    """The untuned warm-up ``2 / (1 - beta2)`` of Ma & Yarats (2021), rounded to whole steps.

    ``beta2 = 0.999`` gives 2000 steps (pytorch_warmup truncates the float to 1999).

    Args:
        beta2: the optimizer's second-moment decay, in (0, 1).
    """
    beta2 = as_float("beta2", beta2, low=0.0, high=1.0, low_open=True, high_open=True, example=0.999)
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
        """Validate the arguments and build a spec; ``where`` prefixes the argument names.

        The decay shape and its options are checked by building the schedule once on a stand-in
        horizon (:meth:`check_options`), so they read exactly as :func:`build_schedule`'s errors.
        """
        parsed: Duration | str
        if isinstance(warmup, Duration) or warmup == "auto":
            parsed = warmup
        else:
            parsed = parse_duration(warmup, name=f"{where}warmup")
        spec = cls(
            warmup=parsed,
            decay=decay,
            warmup_shape=as_choice(f"{where}warmup_shape", warmup_shape, list_warmups()),
            warmup_start=None if warmup_start is None else as_float(
                f"{where}warmup_start", warmup_start, low=0.0, high=1.0, example=0.01),
            min_lr_ratio=as_float(f"{where}min_lr_ratio", min_lr_ratio, low=0.0, high=1.0, example=0.1),
            compat=as_choice(f"{where}compat", compat, COMPATS),
            options=tuple(sorted(dict(options or {}).items())),
        )
        spec.check_options(where)
        return spec

    def check_options(self, where: str = "") -> None:
        """Build the schedule once on a stand-in horizon so an unknown shape or a bad option fails now."""
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

    def warmup_steps(
        self, *, total: int | None, steps_per_epoch: int | None, beta2: float | None, where: str = ""
    ) -> tuple[int, str | None]:
        """The warm-up in optimizer steps for a schedule of ``total`` steps, and why it was shortened.

        A warm-up as long as the schedule, or an ``"auto"`` warm-up longer than it, is shortened to
        ``total - 1`` steps so the last update reaches the peak; the second value then says so (a
        message to warn with), else it is ``None``. A longer warm-up is refused by
        :func:`~lightning_optkit.schedules.schedule.check_warmup`.

        Args:
            total: The schedule's total steps (``None``: unknown).
            steps_per_epoch: Optimizer steps per epoch, for a warm-up in epochs.
            beta2: The optimizer's beta2, for ``warmup="auto"``.
            where: Prefix for messages (which optimizer and group).

        Raises:
            ValueError: when the warm-up cannot be resolved or is longer than the schedule.
        """
        if self.warmup == "auto":
            if beta2 is None:
                raise ValueError(
                    f"{where}warmup='auto' uses 2 / (1 - beta2) of Adam-type optimizers, but this"
                    " optimizer has no betas; give the warm-up in steps or as a share, such as '5%'"
                )
            steps = untuned_warmup(beta2)
            if total is None or steps < total:
                return steps, None
            return max(total - 1, 0), (
                f"{where}warmup='auto' gives {steps} steps (2 / (1 - beta2), beta2={beta2}) but the"
                f" schedule has only {total}; warming up for {max(total - 1, 0)} steps instead."
                " Set warmup to a share such as '5%' for short runs."
            )
        assert isinstance(self.warmup, Duration)
        steps = resolve_duration(self.warmup, total=total, steps_per_epoch=steps_per_epoch, name="warmup",
                                 where=where)
        if total is not None and steps == total:
            return max(total - 1, 0), (
                f"{where}warmup={self.warmup} is as long as the schedule ({total} steps): it would never"
                f" decay; warming up for {max(total - 1, 0)} steps so the last update reaches the peak."
                " Use a shorter warm-up (such as '5%') for a decay phase."
            )
        check_warmup(steps, total, arg=f"{where}warmup", value=str(self.warmup), fix=_FIX_LONG_WARMUP)
        return steps, None

    def resolve(
        self,
        *,
        total: int | None,
        steps_per_epoch: int | None,
        beta2: float | None,
        where: str = "",
        defaults: Mapping[str, Any] | None = None,
    ) -> tuple[Schedule, int]:
        """The schedule and its warm-up length in steps; warns when the warm-up had to be shortened.

        Args:
            total: The schedule's total steps (``None``: unknown).
            steps_per_epoch: Optimizer steps per epoch, for durations in epochs.
            beta2: The optimizer's beta2, for ``warmup="auto"``.
            where: Prefix for error messages (which optimizer and group).
            defaults: Shape options taken from the optimizer where the user gave none (such as the
                ``lr_init`` of Hugging Face's polynomial schedule).
        """
        warmup, shortened = self.warmup_steps(total=total, steps_per_epoch=steps_per_epoch, beta2=beta2,
                                              where=where)
        if shortened is not None:
            warnings.warn(shortened, UserWarning, stacklevel=2)
        try:
            return self.build(warmup_steps=warmup, total_steps=total, defaults=defaults), warmup
        except ValueError as err:
            if total is not None or "total_steps=None" not in str(err):
                raise ValueError(f"{where}{err}") from None
            raise ValueError(
                f"{where}decay={self.decay!r} needs the run's length, which cannot be computed (an"
                " iterable data set with no length and no max_steps); set Trainer(max_steps=...)"
                " or WarmupDecay(total=<steps>), or use a shape that needs no horizon ('constant',"
                " 'inverse_sqrt', 'exponential', 'step')"
            ) from None
