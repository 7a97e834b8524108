"""PNG plots of learning-rate curves.

``matplotlib`` is optional (the ``plots`` extra): it is imported only when a plot is written, so
the schedules and ``WarmupDecay`` work without it, and a plot asked for without it fails saying so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["curve_styles", "plot_lr_curves"]

_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "x", "P", "*")


def curve_styles(curves: Sequence[Sequence[float]], names: Sequence[str]) -> list[dict[str, str]]:
    """Label, line style and marker of each curve, so that curves lying on top of each other
    (groups with equal LRs) stay visible: each curve has its own style, and a curve equal to an
    earlier one says so in the legend (``"head (= body)"``).

    Args:
        curves: The values of each curve, in order.
        names: The curves' names, in the same order.
    """
    styles = []
    for j, curve in enumerate(curves):
        label = names[j] if j < len(names) else f"group {j}"
        same = next((i for i in range(j) if list(curves[i]) == list(curve)), None)
        if same is not None:
            label += f" (= {styles[same]['label'].split(' (= ')[0]})"
        styles.append({"label": label, "linestyle": _LINESTYLES[j % len(_LINESTYLES)],
                       "marker": _MARKERS[j % len(_MARKERS)]})
    return styles


def plot_lr_curves(
    points: Sequence[tuple[int, Sequence[float]]],
    names: Sequence[str],
    path: str,
    *,
    title: str = "Learning rate",
    marks: Sequence[tuple[int, str]] = (),
    ylabel: str = "learning rate",
) -> str:
    """Write a PNG of one LR curve per param group and return its path.

    Args:
        points: ``(step, [lr of each group])`` pairs, in step order.
        names: The groups' names, in the same order as the LRs.
        path: Where to write the PNG (folders are created).
        title: The plot's title.
        marks: ``(step, label)`` pairs drawn as vertical lines (e.g. the end of the warm-up).
        ylabel: The y axis's label (``"LR multiplier"`` when the values are multipliers).
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
    curves = [[lrs[j] for _, lrs in points] for j in range(width)]
    markevery = max(1, len(steps) // 12)
    for curve, style in zip(curves, curve_styles(curves, names)):
        ax.plot(steps, curve, linewidth=1.5, markersize=4, markevery=markevery, **style)
    for step, label in marks:
        ax.axvline(step, color="grey", linestyle=":", linewidth=1)
        ax.annotate(label, (step, 0), xytext=(3, 3), textcoords="offset points", fontsize=8)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
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
