"""The per-group plan behind ``WarmupDecay``: what each parameter group's schedule is, with no Trainer in it.

:class:`SchedulePlan` is everything the user asked for: the shared :class:`ScheduleSpec`, the
per-group overrides, the total and the warm-up of groups added late. Once the run's horizon is
known, :meth:`SchedulePlan.resolve_group` turns one param group into a :class:`GroupSchedule`
(its base LR, resolved schedule and warm-up), whose :meth:`GroupSchedule.factor` is the multiplier
written before each update. All of it is plain and picklable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lightning_optkit._checks import fail
from lightning_optkit.schedules.durations import Duration, DurationSpec, parse_duration, resolve_duration
from lightning_optkit.schedules.preview import plot_preview, preview_rows
from lightning_optkit.schedules.schedule import Schedule
from lightning_optkit.schedules.spec import ScheduleSpec

__all__ = ["GroupSchedule", "SchedulePlan", "late_group_factor", "resolve_total"]


def resolve_total(
    total: Duration | None, *, horizon: float | int | None, steps_per_epoch: int | None
) -> int | None:
    """The schedule's total steps.

    Args:
        total: The user's total (``None``: the trainer's horizon; a fraction: of the horizon).
        horizon: The trainer's estimated optimizer steps (``inf``/``-1``/``None`` if unknown).
        steps_per_epoch: Optimizer steps per epoch, if known.
    """
    steps = None if horizon is None or horizon == -1 or math.isinf(horizon) else int(horizon)
    if total is None:
        return steps
    return resolve_duration(total, total=steps, steps_per_epoch=steps_per_epoch, name="total")


def late_group_factor(step: int, *, start: int, warmup: int) -> float:
    """Linear warm-up factor of a group added at step ``start`` (1 after ``warmup`` steps).

    The first update of the new group runs at ``1 / (warmup + 1)`` of its scheduled LR, never 0.
    """
    if warmup <= 0 or step >= start + warmup:
        return 1.0
    return (max(step - start, 0) + 1) / (warmup + 1)


@dataclass(frozen=True)
class GroupSchedule:
    """One param group's resolved schedule.

    Attributes:
        name: The group's name (its ``"name"`` key, else ``pg<j+1>``).
        base_lr: The peak LR the multiplier scales.
        base_wd: The weight decay the multiplier scales (with ``scale_weight_decay``).
        schedule: The multiplier per step.
        warmup_steps: The warm-up in steps (of the late warm-up for a group that joined late).
        key: The override key of :attr:`SchedulePlan.groups` that matched it (``None``: none).
    """

    name: str
    base_lr: float
    base_wd: float
    schedule: Schedule
    warmup_steps: int
    key: str | None = None

    def factor(self, step: int, *, joined: int = 0) -> float:
        """The multiplier at ``step`` of a group that joined at step ``joined`` (0: from the start)."""
        factor = self.schedule(step)
        if joined > 0:
            factor *= late_group_factor(step, start=joined, warmup=self.warmup_steps)
        return factor

    def row(self, *, optimizer: int, total: int | None) -> dict[str, Any]:
        """A JSON-serialisable summary: warm-up, total, peak and floor."""
        floor = self.schedule(total - 1) if total is not None else None
        return {
            "optimizer": optimizer, "group": self.name, "warmup_steps": self.warmup_steps,
            "total_steps": total, "peak_lr": self.base_lr,
            "floor_lr": None if floor is None else self.base_lr * floor,
            "schedule": self.schedule.describe(),
        }


@dataclass(frozen=True)
class SchedulePlan:
    """What the user asked for, for every param group; checked once, at construction.

    Attributes:
        spec: The schedule of every group without an override.
        groups: Per-group overrides, keyed by group name, index (``"1"``) or ``"optimizer/group"``.
        total: The schedule's length (``None``: the trainer's horizon).
        late_group_warmup: The warm-up of groups added during training (``None``: their own).
    """

    spec: ScheduleSpec = field(default_factory=ScheduleSpec)
    groups: Mapping[str, ScheduleSpec] = field(default_factory=dict)
    total: Duration | None = None
    late_group_warmup: Duration | None = None

    @classmethod
    def create(
        cls,
        spec: ScheduleSpec | None = None,
        *,
        total: DurationSpec | None = None,
        groups: Mapping[str, Mapping[str, Any]] | None = None,
        late_group_warmup: DurationSpec | None = None,
    ) -> SchedulePlan:
        """Validate the settings around ``spec`` and build the plan.

        Args:
            spec: The schedule of every group without an override (``None``: the defaults).
            total: The schedule's length as the user wrote it (``None``: the trainer's horizon).
            groups: Per-group overrides: key -> any of the :data:`~lightning_optkit.schedules.spec.OVERRIDE_KEYS`.
            late_group_warmup: The warm-up of groups added during training (``None``: their own).

        Raises:
            ValueError: naming the setting, its value and what is allowed.
        """
        spec = spec or ScheduleSpec()
        length = None if total is None else parse_duration(total, name="total")
        if length is not None and length.unit == "steps":
            if length.value < 1:
                raise fail("total", total, "expected at least 1 optimizer step",
                           "pass a positive number of steps, a share such as '50%', or None for the run's length")
            if isinstance(spec.warmup, Duration) and spec.warmup.unit == "steps":
                # known before the run: refuse a longer warm-up now (one as long is shortened at fit)
                spec.warmup_steps(total=int(length.value), steps_per_epoch=None, beta2=None)
        overrides = {
            str(key): spec.with_overrides(value, where=f"groups[{key!r}]") for key, value in (groups or {}).items()
        }
        late = None if late_group_warmup is None else parse_duration(late_group_warmup, name="late_group_warmup")
        return cls(spec=spec, groups=overrides, total=length, late_group_warmup=late)

    def spec_for(self, index: int, j: int, name: str) -> tuple[str | None, ScheduleSpec]:
        """The override key matching group ``j`` (named ``name``) of optimizer ``index``, and its spec."""
        for key in (name, f"{index}/{j}", f"{index}/{name}", str(j) if index == 0 else None):
            if key is not None and key in self.groups:
                return key, self.groups[key]
        return None, self.spec

    def unmatched(self, keys: Iterable[str | None]) -> list[str]:
        """The override keys not among ``keys`` (those that matched a group), sorted."""
        return sorted(set(self.groups) - set(keys))

    def total_steps(self, *, horizon: float | int | None, steps_per_epoch: int | None) -> int | None:
        """The schedule's length in steps for the trainer's ``horizon`` (``None``: unknown)."""
        return resolve_total(self.total, horizon=horizon, steps_per_epoch=steps_per_epoch)

    def resolve_group(
        self,
        *,
        index: int,
        j: int,
        name: str,
        base_lr: float,
        base_wd: float = 0.0,
        total: int | None,
        steps_per_epoch: int | None = None,
        beta2: float | None = None,
        lr_init: float | None = None,
        joined: int = 0,
    ) -> GroupSchedule:
        """The schedule of group ``j`` (named ``name``) of optimizer ``index``.

        Args:
            index: The optimizer's index.
            j: The group's index in the optimizer.
            name: The group's name, for overrides and messages.
            base_lr: The group's peak LR.
            base_wd: The group's weight decay.
            total: The schedule's length in steps (``None``: unknown).
            steps_per_epoch: Optimizer steps per epoch, for durations in epochs.
            beta2: The group's beta2, for ``warmup="auto"`` (``None``: the optimizer has none).
            lr_init: The optimizer's default LR (Hugging Face's polynomial schedule reads it).
            joined: The step at which the group was added (0: from the start).

        Raises:
            ValueError: prefixed with the optimizer and group, when the schedule cannot be resolved.
        """
        key, spec = self.spec_for(index, j, name)
        defaults = None
        if spec.compat == "hf" and spec.decay == "polynomial":  # transformers reads defaults["lr"]
            defaults = {"lr_init": base_lr if lr_init is None else lr_init}
        schedule, warmup = spec.resolve(total=total, steps_per_epoch=steps_per_epoch, beta2=beta2,
                                        where=f"optimizer {index}, group {name!r}: ", defaults=defaults)
        if joined > 0 and self.late_group_warmup is not None:
            warmup = resolve_duration(self.late_group_warmup, total=total, steps_per_epoch=steps_per_epoch,
                                      name="late_group_warmup")
        return GroupSchedule(name=name, base_lr=float(base_lr), base_wd=float(base_wd), schedule=schedule,
                             warmup_steps=warmup, key=key)

    def preview(
        self,
        total_steps: int | None = None,
        *,
        steps_per_epoch: int | None = None,
        base_lrs: list[float] | None = None,
        names: list[str] | None = None,
        beta2: float = 0.999,
        path: str | None = None,
        max_rows: int = 200,
    ) -> list[dict[str, float]]:
        """The LRs of the first optimizer's groups over the run, and optionally a PNG of the curves.

        The arguments are those of ``WarmupDecay.preview``, which calls this.
        """
        bases = list(base_lrs or [1.0])
        labels = list(names or [f"pg{j + 1}" for j in range(len(bases))])
        total = self.total_steps(horizon=total_steps, steps_per_epoch=steps_per_epoch)
        if total is None:
            raise ValueError("preview needs total_steps (or WarmupDecay(total=<steps>)) to know the horizon")
        schedules, warmups = [], []
        for j, label in enumerate(labels):
            schedule, warmup = self.spec_for(0, j, label)[1].resolve(total=total, steps_per_epoch=steps_per_epoch,
                                                                     beta2=beta2)
            schedules.append(schedule)
            warmups.append(warmup)
        if path:
            ylabel = "learning rate" if base_lrs else "LR multiplier (x each group's base LR)"
            plot_preview(schedules, bases, labels, total=total, warmups=warmups, path=path, ylabel=ylabel)
        return preview_rows(schedules, bases, labels, total=total, marks=tuple(warmups), max_rows=max_rows)
