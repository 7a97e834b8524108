"""What ``WarmupDecay`` tells the user: the start-of-fit table, the fit-start traps, the LR history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lightning_optkit.callbacks.warmup_decay.driven import DrivenOptimizer

__all__ = ["LRHistory", "format_schedule", "trap_warnings"]


def format_schedule(rows: list[dict[str, Any]]) -> str:
    """The start-of-fit printout of :meth:`DrivenOptimizer.rows`."""
    lines = ["WarmupDecay schedule:"]
    for r in rows:
        floor = "n/a" if r["floor_lr"] is None else f"{r['floor_lr']:.3g}"
        total = "open-ended" if r["total_steps"] is None else f"{r['total_steps']} steps"
        lines.append(
            f"  optimizer {r['optimizer']} group {r['group']}: {r['schedule'].get('shape', '')},"
            f" warm-up {r['warmup_steps']} steps of {total}, peak {r['peak_lr']:.3g}, floor {floor}"
        )
    return "\n".join(lines)


def trap_warnings(
    driven: Sequence[DrivenOptimizer], schedulers: Sequence[Any], horizon: int | None, *, limit: str = ""
) -> list[str]:
    """Messages for the traps found at fit start: double scheduling, a schedule shorter than the run.

    Args:
        driven: The driven optimizers.
        schedulers: The Trainer's ``lr_scheduler_configs``.
        horizon: The run's length in optimizer steps (``Trainer.estimated_stepping_batches``,
            from ``max_steps`` or ``max_epochs``); ``None`` when unknown.
        limit: What sets that length, for the message (e.g. ``"max_epochs=10"``).
    """
    messages = []
    driven_ids = {id(d.optimizer) for d in driven}
    for config in schedulers:
        if id(getattr(config.scheduler, "optimizer", None)) in driven_ids:
            messages.append(
                f"configure_optimizers also returns {type(config.scheduler).__name__} for an"
                " optimizer this callback drives; both would set the LR (double scheduling)."
                " Return only the optimizer, or pass optimizers=[...] to leave it out."
            )
    for d in driven:
        if d.total is not None and horizon is not None and 0 < horizon and d.total < horizon:
            run = f"{limit} gives {horizon} steps" if limit else f"the run has {horizon} steps"
            messages.append(
                f"the schedule ends after {d.total} steps but {run}; the LR holds"
                f" the floor for the remaining {horizon - d.total} steps."
            )
    return messages


@dataclass
class LRHistory:
    """The LRs set, as ``(step, [lr of each group])`` points, in constant memory.

    When ``limit`` points are reached every other point is dropped and from then on only every
    second step is kept, and so on: a long run keeps an evenly thinned curve for the plot.
    """

    limit: int = 4096
    points: list[tuple[int, list[float]]] = field(default_factory=list)
    every: int = 1

    def add(self, step: int, lrs: list[float]) -> None:
        """Keep ``(step, lrs)`` if ``step`` falls on the current spacing."""
        if step % self.every == 0:
            self.points.append((step, lrs))
            if len(self.points) >= self.limit:
                self.points = self.points[::2]
                self.every *= 2
