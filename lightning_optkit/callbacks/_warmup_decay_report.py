"""WarmupDecay's helpers: LR metric names, the resolved-schedule table, fit-start traps, the
preview, and the step post-hook that counts applied updates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from lightning_optkit.schedule_plan import ScheduleSpec, preview_rows, resolve_schedule
from lightning_optkit.schedules import Schedule

__all__ = [
    "lr_metrics",
    "schedule_rows",
    "format_schedule",
    "trap_warnings",
    "preview_curves",
    "count_applied",
    "check_choice",
]

_APPLIED = "optkit_applied_updates"  # the optimizer's own count of applied updates


@dataclass
class _Driven:
    """Runtime view of one optimizer that the callback drives (rebuilt each fit)."""

    index: int
    optimizer: torch.optim.Optimizer
    total: Optional[int]
    base_lrs: list[float] = field(default_factory=list)
    base_wds: list[float] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)
    warmups: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    hook: Any = None
    last_step: int = -1
    last_logged: int = -1
    lrs: list[float] = field(default_factory=list)  # the values for ``last_step``
    wds: list[float] = field(default_factory=list)


def lr_metrics(
    all_driven: list[_Driven], driven: _Driven, lrs: list[float], *, with_wd: bool
) -> dict[str, float]:
    """Metric names as Lightning's LearningRateMonitor writes them: ``lr-<Optimizer>[-i][/group]``."""
    prefix = f"lr-{type(driven.optimizer).__name__}"
    if sum(type(d.optimizer) is type(driven.optimizer) for d in all_driven) > 1:
        prefix += f"-{driven.index}"
    metrics: dict[str, float] = {}
    for j, lr in enumerate(lrs):
        key = prefix if len(lrs) == 1 else f"{prefix}/{driven.names[j]}"
        metrics[key] = lr
        if with_wd:
            metrics["wd" + key[2:]] = driven.optimizer.param_groups[j].get("weight_decay", 0.0)
    return metrics


def schedule_rows(all_driven: list[_Driven]) -> list[dict[str, Any]]:
    """One JSON-serialisable row per driven param group: warm-up, total, peak and floor."""
    rows = []
    for d in all_driven:
        for j, name in enumerate(d.names):
            floor = d.schedules[j](d.total - 1) if d.total is not None else None
            rows.append({
                "optimizer": d.index, "group": name, "warmup_steps": d.warmups[j],
                "total_steps": d.total, "peak_lr": d.base_lrs[j],
                "floor_lr": None if floor is None else d.base_lrs[j] * floor,
                "schedule": d.schedules[j].describe(),
            })
    return rows


def format_schedule(rows: list[dict[str, Any]]) -> str:
    """The start-of-fit printout of :func:`schedule_rows`."""
    lines = ["WarmupDecay schedule:"]
    for r in rows:
        floor = "n/a" if r["floor_lr"] is None else f"{r['floor_lr']:.3g}"
        total = "open-ended" if r["total_steps"] is None else f"{r['total_steps']} steps"
        lines.append(
            f"  optimizer {r['optimizer']} group {r['group']}: {r['schedule'].get('shape', '')},"
            f" warm-up {r['warmup_steps']} steps of {total}, peak {r['peak_lr']:.3g}, floor {floor}"
        )
    return "\n".join(lines)


def trap_warnings(all_driven: list[_Driven], trainer: Any) -> list[str]:
    """Messages for the traps found at fit start: double scheduling, a schedule shorter than max_steps."""
    messages = []
    driven_ids = {id(d.optimizer) for d in all_driven}
    for config in getattr(trainer, "lr_scheduler_configs", []) or []:
        if id(getattr(config.scheduler, "optimizer", None)) in driven_ids:
            messages.append(
                f"configure_optimizers also returns {type(config.scheduler).__name__} for an"
                " optimizer this callback drives; both would set the LR (double scheduling)."
                " Return only the optimizer, or pass optimizers=[...] to leave it out."
            )
    max_steps = getattr(trainer, "max_steps", -1)
    for d in all_driven:
        if d.total is not None and 0 < max_steps and d.total < max_steps:
            messages.append(
                f"the schedule ends after {d.total} steps but max_steps={max_steps}; the LR holds"
                f" the floor for the remaining {max_steps - d.total} steps."
            )
    return messages


def preview_curves(
    specs: list[ScheduleSpec],
    bases: list[float],
    labels: list[str],
    *,
    total: int,
    steps_per_epoch: Optional[int],
    beta2: float,
    path: Optional[str],
    max_rows: int,
) -> list[dict[str, float]]:
    """The preview table of ``specs`` over ``total`` steps, and optionally a PNG of the curves."""
    schedules, warmups = [], []
    for spec in specs:
        schedule, warmup = resolve_schedule(spec, total=total, steps_per_epoch=steps_per_epoch, beta2=beta2)
        schedules.append(schedule)
        warmups.append(warmup)
    rows = preview_rows(schedules, bases, labels, total=total, marks=tuple(warmups), max_rows=max_rows)
    if path:
        from lightning_optkit.plots import plot_lr_curves

        horizon = range(0, total + max(1, total // 20))
        dense = [(s, [b * f(s) for f, b in zip(schedules, bases)]) for s in horizon]
        marks = [(w, "warm-up end") for w in sorted(set(warmups)) if w > 0] + [(total, "horizon")]
        plot_lr_curves(dense, labels, path, title="Learning-rate schedule (preview)", marks=marks)
    return rows


def count_applied(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    """Step post-hook: count an applied update (a fused step that found inf/nan was skipped)."""
    found_inf = getattr(optimizer, "found_inf", None)
    if isinstance(found_inf, torch.Tensor) and bool(found_inf.item()):
        return
    group = optimizer.param_groups[0]
    group[_APPLIED] = group.get(_APPLIED, 0) + 1


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} must be one of {', '.join(map(repr, allowed))}")
