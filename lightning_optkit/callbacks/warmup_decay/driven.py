"""One optimizer that ``WarmupDecay`` drives: its groups' schedules, its update counters, the LRs it writes.

The counters live in the optimizer's first param group, so they are saved and restored with the
optimizer's own state and need no counter of the callback's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import torch

from lightning_optkit.schedules.plan import GroupSchedule, SchedulePlan

__all__ = ["DrivenOptimizer"]

_ATTEMPTS = "optkit_updates"  # the optimizer's own count of updates (several optimizers)
_APPLIED = "optkit_applied_updates"  # the optimizer's own count of applied updates
_START = "optkit_start_step"  # the step at which a param group joined


def _count_applied(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    """Step post-hook: count an applied update (a fused step that found inf/nan was skipped)."""
    found_inf = getattr(optimizer, "found_inf", None)
    if isinstance(found_inf, torch.Tensor) and bool(found_inf.item()):
        return
    group = optimizer.param_groups[0]
    group[_APPLIED] = group.get(_APPLIED, 0) + 1


@dataclass
class DrivenOptimizer:
    """Runtime state of one driven optimizer (rebuilt each fit, and when the optimizer is replaced).

    Attributes:
        index: The optimizer's index in ``trainer.optimizers``.
        optimizer: The optimizer.
        total: The schedule's length in steps (``None``: open-ended).
        groups: The resolved schedule of each param group, in order.
        lrs: The LRs of ``last_step``; wds: the weight decays of ``last_step``.
    """

    index: int
    optimizer: torch.optim.Optimizer
    total: Optional[int]
    groups: list[GroupSchedule] = field(default_factory=list)
    last_step: int = -1
    last_logged: int = -1
    lrs: list[float] = field(default_factory=list)
    wds: list[float] = field(default_factory=list)
    _hook: Any = field(default=None, repr=False)

    # ------------------------------------------------------------------ per-group views
    @property
    def names(self) -> list[str]:
        """The groups' names."""
        return [g.name for g in self.groups]

    @property
    def base_lrs(self) -> list[float]:
        """The groups' peak LRs."""
        return [g.base_lr for g in self.groups]

    @property
    def base_wds(self) -> list[float]:
        """The groups' base weight decays."""
        return [g.base_wd for g in self.groups]

    @property
    def warmups(self) -> list[int]:
        """The groups' warm-up lengths in steps."""
        return [g.warmup_steps for g in self.groups]

    # ------------------------------------------------------------------ set-up
    def add_groups(
        self,
        plan: SchedulePlan,
        *,
        steps_per_epoch: Optional[int],
        start: int = 0,
        saved_lrs: list[float] | None = None,
        saved_wds: list[float] | None = None,
    ) -> None:
        """Resolve the schedule of every param group not driven yet (all at fit start, new ones later).

        Args:
            plan: What the user asked for.
            steps_per_epoch: Optimizer steps per epoch, for durations in epochs.
            start: The step at which these groups join (0: from the start).
            saved_lrs: Base LRs from a checkpoint, by group index.
            saved_wds: Base weight decays from a checkpoint, by group index.
        """
        saved_lrs, saved_wds = saved_lrs or [], saved_wds or []
        param_groups = self.optimizer.param_groups
        for j in range(len(self.groups), len(param_groups)):
            group = param_groups[j]
            base = group.get("initial_lr", saved_lrs[j] if j < len(saved_lrs) else group["lr"])
            group.setdefault("initial_lr", base)
            group.setdefault(_START, start)
            betas = group.get("betas")
            wd = saved_wds[j] if j < len(saved_wds) else group.get("weight_decay", 0.0)
            self.groups.append(plan.resolve_group(
                index=self.index, j=j, name=str(group.get("name", f"pg{j + 1}")), base_lr=float(base),
                base_wd=float(wd), total=self.total, steps_per_epoch=steps_per_epoch,
                beta2=float(betas[1]) if isinstance(betas, (tuple, list)) and len(betas) > 1 else None,
                lr_init=self.optimizer.defaults.get("lr", base), joined=group[_START],
            ))

    def count_applied_updates(self) -> None:
        """Count the applied updates in the optimizer (for ``count="applied"`` without a scaler to ask)."""
        self._hook = self.optimizer.register_step_post_hook(_count_applied)

    def release(self) -> None:
        """Remove the step hook, if any."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    # ------------------------------------------------------------------ every update
    def count_attempt(self) -> None:
        """Count one update in the optimizer's own counter (read when several optimizers step)."""
        group = self.optimizer.param_groups[0]
        group[_ATTEMPTS] = group.get(_ATTEMPTS, 0) + 1

    def step_of(
        self, *, global_step: int, count: Literal["all", "applied"], several: bool, skipped: Optional[int] = None
    ) -> int:
        """The number of updates that drive this optimizer's schedule.

        Args:
            global_step: The trainer's update count.
            count: ``"all"`` updates or only ``"applied"`` ones.
            several: Whether the model has several optimizers (each then counts its own updates).
            skipped: Updates skipped by the precision plugin (``None``: it cannot tell).
        """
        first = self.optimizer.param_groups[0]
        if count == "applied":
            if skipped is not None and not several:
                return global_step - skipped
            return int(first.get(_APPLIED, 0))
        return int(first.get(_ATTEMPTS, 0)) if several else global_step

    def apply(self, step: int, *, scale_weight_decay: bool) -> list[float]:
        """Write the LRs (and weight decays) of ``step`` into the param groups and return the LRs.

        They are computed once per step and written again before the update, even if already
        written at batch start, so nothing in between can change what the update uses.
        """
        param_groups = self.optimizer.param_groups
        if step != self.last_step or len(self.lrs) != len(param_groups):
            self.lrs, self.wds = [], []
            for schedule, group in zip(self.groups, param_groups):
                factor = schedule.factor(step, joined=group.get(_START, 0))
                self.lrs.append(schedule.base_lr * factor)
                self.wds.append(schedule.base_wd * factor)
            self.last_step = step
        for j, group in enumerate(param_groups):
            group["lr"] = self.lrs[j]
            if scale_weight_decay and "weight_decay" in group:
                group["weight_decay"] = self.wds[j]
        return self.lrs

    def first_log_of(self, step: int) -> bool:
        """``True`` the first time ``step`` is offered for logging (several calls per step are one)."""
        if step == self.last_logged:
            return False
        self.last_logged = step
        return True

    # ------------------------------------------------------------------ reports
    def metrics(self, lrs: list[float], *, numbered: bool, with_wd: bool) -> dict[str, float]:
        """Metric names as Lightning's LearningRateMonitor writes them: ``lr-<Optimizer>[-i][/group]``.

        Args:
            lrs: The LRs to log, one per group.
            numbered: Whether another driven optimizer has the same class (then ``-<index>``).
            with_wd: Also log the weight decays (``wd-...``).
        """
        prefix = f"lr-{type(self.optimizer).__name__}" + (f"-{self.index}" if numbered else "")
        metrics: dict[str, float] = {}
        for j, lr in enumerate(lrs):
            key = prefix if len(lrs) == 1 else f"{prefix}/{self.groups[j].name}"
            metrics[key] = lr
            if with_wd:
                metrics["wd" + key[2:]] = self.optimizer.param_groups[j].get("weight_decay", 0.0)
        return metrics

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-serialisable row per group: warm-up, total, peak and floor."""
        return [group.row(optimizer=self.index, total=self.total) for group in self.groups]
