"""A schedule shown before training: a table of LRs and a PNG of the curves."""

from __future__ import annotations

import math
from collections.abc import Sequence

from lightning_optkit.schedules.schedule import Schedule

__all__ = ["preview_rows", "format_rows", "plot_preview"]


def preview_rows(
    schedules: Sequence[Schedule],
    base_lrs: Sequence[float],
    names: Sequence[str],
    *,
    total: int,
    marks: tuple[int, ...] = (),
    max_rows: int = 200,
) -> list[dict[str, float]]:
    """A table of LRs over ``total`` steps (plus a few past it), at most about ``max_rows`` rows.

    Rows are evenly spaced steps plus every step in ``marks`` (the warm-up's end, the last
    scheduled step) and the first step past the horizon, so the hand-offs are always shown.

    Args:
        schedules: One schedule per group.
        base_lrs: The groups' base LRs, in the same order.
        names: The groups' names (the table's columns), in the same order.
        total: The schedule's length in steps.
        marks: Steps shown with their neighbours whatever the spacing.
        max_rows: About how many evenly spaced rows.
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


def plot_preview(
    schedules: Sequence[Schedule],
    base_lrs: Sequence[float],
    names: Sequence[str],
    *,
    total: int,
    warmups: Sequence[int],
    path: str,
    ylabel: str = "learning rate",
) -> str:
    """Write a PNG of every group's LR over ``total`` steps (and a twentieth past it); needs matplotlib.

    Args:
        schedules: One schedule per group.
        base_lrs: The groups' base LRs, in the same order.
        names: The groups' names (the legend), in the same order.
        total: The schedule's length in steps (marked as the horizon).
        warmups: The groups' warm-up lengths (their ends are marked).
        path: Where to write the PNG.
        ylabel: The y axis's label (``"LR multiplier"`` when ``base_lrs`` are all 1).

    Returns:
        ``path``.
    """
    from lightning_optkit.schedules.plot import plot_lr_curves

    horizon = range(0, total + max(1, total // 20))
    dense = [(s, [b * f(s) for f, b in zip(schedules, base_lrs)]) for s in horizon]
    marks = [(w, "warm-up end") for w in sorted(set(warmups)) if w > 0] + [(total, "horizon")]
    return plot_lr_curves(dense, names, path, title="Learning-rate schedule (preview)", marks=marks,
                          ylabel=ylabel)
