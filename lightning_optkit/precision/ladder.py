"""The fallback ladder's trigger: when has fp16 loss scaling collapsed?

Pure bookkeeping over host copies of the scaler's cumulative counters. Two triggers:

* ``patience`` consecutive skipped steps with the scale already at ``min_scale`` (the scaler can do
  nothing more);
* more than ``max_skip_rate`` of the last ``window`` steps skipped (training makes no progress even
  if the scale is not at the floor).

In a multi-process run every rank sees the same counters (gradients are all-reduced before the
inf check, so an overflow on one rank is an overflow on all), hence the same decision at the same
step, with no extra collective.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["FallbackPolicy", "validate_fallback_options"]


def validate_fallback_options(patience: int, max_skip_rate: float, window: int) -> None:
    """Raise ``ValueError`` naming a bad fallback argument."""
    if not (isinstance(patience, int) and patience >= 1):
        raise ValueError(f"fallback_patience={patience!r} must be a positive integer (consecutive "
                         "skipped steps at min_scale before switching), such as 20")
    if not (isinstance(max_skip_rate, (int, float)) and 0 < max_skip_rate <= 1):
        raise ValueError(f"fallback_skip_rate={max_skip_rate!r} must lie in (0, 1], such as 0.5; "
                         "use 1.0 to switch only on the patience rule")
    if not (isinstance(window, int) and window >= 1):
        raise ValueError(f"fallback_window={window!r} must be a positive integer, such as 100")


@dataclass
class FallbackPolicy:
    """Decides from the scaler's counters whether fp16 should be abandoned.

    Attributes:
        patience: Consecutive skipped steps at the minimum scale that trigger the fallback.
        max_skip_rate: Skip rate over ``window`` steps above which the fallback triggers
            (``1.0`` disables this rule).
        window: Steps over which the skip rate is measured.
    """

    patience: int = 20
    max_skip_rate: float = 0.5
    window: int = 100
    _history: deque[tuple[int, int]] = field(default_factory=deque, repr=False)

    def reset(self) -> None:
        """Forget the skip history (after a switch)."""
        self._history.clear()

    def check(self, stats: Mapping[str, float]) -> str | None:
        """Feed one snapshot of the counters; return the reason to fall back, or ``None``.

        Args:
            stats: ``steps``, ``skipped_steps``, ``floor_streak`` and ``scale`` (cumulative).
        """
        steps, skipped = int(stats["steps"]), int(stats["skipped_steps"])
        if int(stats["floor_streak"]) >= self.patience:
            return (f"{int(stats['floor_streak'])} consecutive skipped steps at the minimum loss scale "
                    f"{stats['scale']:g} (fallback_patience={self.patience})")
        self._history.append((steps, skipped))
        while len(self._history) > 1 and self._history[1][0] <= steps - self.window:
            self._history.popleft()
        first_steps, first_skipped = self._history[0]
        span = steps - first_steps
        if self.max_skip_rate < 1.0 and span >= self.window:
            rate = (skipped - first_skipped) / span
            if rate > self.max_skip_rate:
                return (f"{rate:.0%} of the last {span} steps skipped "
                        f"(fallback_skip_rate={self.max_skip_rate:g})")
        return None
