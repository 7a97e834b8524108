"""The fallback ladder's trigger: when has fp16 loss scaling collapsed?

Pure bookkeeping over host copies of the scaler's cumulative counters. Two triggers:

* ``patience`` consecutive skipped steps with the scale already at ``min_scale`` (the scaler can do
  nothing more);
* more than ``skip_rate`` of the last ``window`` steps skipped (training makes no progress even
  if the scale is not at the floor).

In a multi-process run every rank sees the same counters (gradients are all-reduced before the
inf check, so an overflow on one rank is an overflow on all), hence the same decision at the same
step, with no extra collective.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from lightning_optkit.precision.options import FallbackPolicy

__all__ = ["CollapseDetector"]


class CollapseDetector:
    """Decides from the scaler's counters whether fp16 should be abandoned.

    Args:
        policy: The thresholds (:class:`FallbackPolicy`).
    """

    def __init__(self, policy: FallbackPolicy | None = None) -> None:
        self.policy = FallbackPolicy() if policy is None else policy
        self._history: deque[tuple[int, int]] = deque()

    def check(self, stats: Mapping[str, float]) -> str | None:
        """Feed one snapshot of the counters; return the reason to fall back, or ``None``.

        Args:
            stats: ``steps``, ``skipped_steps``, ``floor_streak`` and ``scale`` (cumulative).
        """
        policy = self.policy
        steps, skipped = int(stats["steps"]), int(stats["skipped_steps"])
        if int(stats["floor_streak"]) >= policy.patience:
            return (f"{int(stats['floor_streak'])} consecutive skipped steps at the minimum loss scale "
                    f"{stats['scale']:g} (fallback_policy.patience={policy.patience})")
        self._history.append((steps, skipped))
        while len(self._history) > 1 and self._history[1][0] <= steps - policy.window:
            self._history.popleft()
        first_steps, first_skipped = self._history[0]
        span = steps - first_steps
        if policy.skip_rate < 1.0 and span >= policy.window:
            rate = (skipped - first_skipped) / span
            if rate > policy.skip_rate:
                return (f"{rate:.0%} of the last {span} steps skipped "
                        f"(fallback_policy.skip_rate={policy.skip_rate:g})")
        return None
