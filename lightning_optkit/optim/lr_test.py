"""A robust learning-rate range test: the sweep and the rule that reads its curve.

The sweep raises the LR geometrically around the prior while training; the rule

1. smooths the loss with a bias-corrected EMA (single batches are noisy),
2. cuts the curve where it diverges (non-finite, or above ``diverge_factor`` x its minimum),
3. finds the valley: from where the descent starts (less than 5% of the total drop made) to the
   minimum of the smoothed loss, and suggests the LR two thirds of the way down it in log space
   (never the steepest-slope point, which single-batch noise moves by orders of magnitude),
4. clamps the suggestion to within ``clamp`` x of the prior, and keeps the prior when the curve
   shows no clear descent.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["LRTestResult", "sweep_lrs", "smooth", "suggest_lr"]


@dataclass(frozen=True)
class LRTestResult:
    """What the range test found.

    Attributes:
        suggestion: The LR to use (clamped to the prior's neighbourhood).
        raw: The valley rule's LR before clamping, or ``None`` if the test was inconclusive.
        prior: The prior LR the test was centred on.
        reason: How the suggestion was reached.
        lrs: The swept LRs (up to the divergence cut).
        losses: The smoothed losses at those LRs.
    """

    suggestion: float
    raw: float | None
    prior: float
    reason: str
    lrs: tuple[float, ...] = ()
    losses: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view."""
        out = asdict(self)
        out["lrs"] = [float(f"{v:.4g}") for v in self.lrs]
        out["losses"] = [round(v, 6) for v in self.losses]
        return out


def sweep_lrs(prior: float, steps: int, span: float = 100.0) -> list[float]:
    """``steps`` LRs spaced geometrically from ``prior / span`` to ``prior * span``."""
    if steps < 2:
        raise ValueError(f"steps={steps!r} must be at least 2 for a range test")
    if prior <= 0 or span <= 1:
        raise ValueError(f"prior={prior!r} must be > 0 and span={span!r} > 1")
    lo, hi = math.log(prior / span), math.log(prior * span)
    return [math.exp(lo + (hi - lo) * i / (steps - 1)) for i in range(steps)]


def smooth(values: list[float], beta: float = 0.8) -> list[float]:
    """Bias-corrected exponential moving average; stops at the first non-finite value."""
    out: list[float] = []
    avg = 0.0
    for i, v in enumerate(values):
        if not math.isfinite(v):
            break
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def suggest_lr(
    lrs: list[float],
    losses: list[float],
    prior: float,
    clamp: float = 10.0,
    diverge_factor: float = 4.0,
    beta: float = 0.8,
    min_drop: float = 0.02,
) -> LRTestResult:
    """Read a range-test curve and suggest an LR within ``clamp`` x of ``prior``.

    Args:
        lrs: The swept LRs, increasing.
        losses: The raw loss at each LR.
        prior: The LR the rules proposed.
        clamp: The suggestion stays within ``[prior / clamp, prior * clamp]``.
        diverge_factor: The curve is cut where the smoothed loss exceeds this x its minimum.
        beta: EMA factor of the smoothing.
        min_drop: A descent smaller than this share of the initial loss is inconclusive.

    Example:
        >>> lrs = sweep_lrs(1e-2, 30)
        >>> losses = [1.0 / (1 + 1000 * lr) if lr < 0.2 else 50.0 for lr in lrs]
        >>> round(suggest_lr(lrs, losses, 1e-2).suggestion, 3)
        0.016
    """
    n = min(len(lrs), len(losses))
    sm = smooth(list(losses[:n]), beta)
    cut = len(sm)
    best = math.inf
    for i, v in enumerate(sm):
        best = min(best, v)
        if i > 0 and v > diverge_factor * best:
            cut = i
            break
    sm, xs = sm[:cut], list(lrs[:cut])
    lo, hi = prior / clamp, prior * clamp
    if len(sm) < 4:
        return LRTestResult(prior, None, prior, "too few finite points: kept the prior",
                            tuple(xs), tuple(sm))
    m = min(range(len(sm)), key=sm.__getitem__)
    drop = sm[0] - sm[m]
    if m == 0 or drop < min_drop * abs(sm[0]):
        return LRTestResult(prior, None, prior, "no clear descent: kept the prior",
                            tuple(xs), tuple(sm))
    start = 0
    for i in range(m, -1, -1):
        if sm[0] - sm[i] < 0.05 * drop:
            start = i
            break
    pick = math.exp(math.log(xs[start]) + 2.0 / 3.0 * (math.log(xs[m]) - math.log(xs[start])))
    value = min(max(pick, lo), hi)
    why = f"valley {xs[start]:.2g}..{xs[m]:.2g}, 2/3 down it: {pick:.3g}"
    if value != pick:
        why += f", clamped to {value:.3g} (within {clamp:g}x of the prior {prior:.3g})"
    return LRTestResult(value, pick, prior, why, tuple(xs), tuple(sm))
