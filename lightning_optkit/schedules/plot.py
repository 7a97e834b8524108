"""PNG plots of learning-rate curves.

``matplotlib`` is optional (the ``plots`` extra): it is imported only when a plot is written, so
the schedules and ``WarmupDecay`` work without it, and a plot asked for without it fails saying so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["plot_lr_curves"]


def plot_lr_curves(
    points: Sequence[tuple[int, Sequence[float]]],
    names: Sequence[str],
    path: str,
    *,
    title: str = "Learning rate",
    marks: Sequence[tuple[int, str]] = (),
) -> str:
    """Write a PNG of one LR curve per param group and return its path.

    Args:
        points: ``(step, [lr of each group])`` pairs, in step order.
        names: The groups' names, in the same order as the LRs.
        path: Where to write the PNG (folders are created).
        title: The plot's title.
        marks: ``(step, label)`` pairs drawn as vertical lines (e.g. the end of the warm-up).
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"writing the LR plot {path!r} needs matplotlib, which is not installed: pip install"
            " 'lightning-optkit[plots]', or leave out the plot (plot_path=None, no --png)"
        ) from err
    steps = [step for step, _ in points]
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    width = max((len(lrs) for _, lrs in points), default=0)
    for j in range(width):
        label = names[j] if j < len(names) else f"group {j}"
        ax.plot(steps, [lrs[j] for _, lrs in points], label=label, linewidth=1.5)
    for step, label in marks:
        ax.axvline(step, color="grey", linestyle=":", linewidth=1)
        ax.annotate(label, (step, 0), xytext=(3, 3), textcoords="offset points", fontsize=8)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if width > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
