"""Race bookkeeping: successive halving with a noise-aware, paired comparison.

Every candidate trains from the same initial weights on the same batches, so the losses of two
candidates at the same step are paired: their difference cancels the batch-to-batch noise. A
candidate is eliminated only when it is *clearly* worse than the leader (paired mean difference
larger than ``z`` standard errors and than a relative margin); when nothing is clearly separated
the prior's first choice stays. A non-finite or exploding loss drops a candidate at once.

The plan caps the losers' cost: with ``k`` candidates and a budget of ``B`` steps, each candidate
runs at most ``B // (k - 1)`` steps, so even if every candidate but the winner runs to the end the
losers spend no more than ``B`` steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RacePlan", "plan_race", "is_diverged", "is_exploded", "paired_gap", "clearly_worse", "RaceBook"]


@dataclass(frozen=True)
class RacePlan:
    """When the race compares candidates.

    Attributes:
        rungs: Cumulative steps per candidate at which survivors are compared (increasing).
        steps_per_candidate: The last rung: the most steps any candidate runs.
        budget: The cap on the losers' total steps.
    """

    rungs: tuple[int, ...]
    steps_per_candidate: int
    budget: int


def plan_race(num_candidates: int, budget: int, min_rung: int = 8) -> RacePlan:
    """Rungs for ``num_candidates`` racing under a losers' budget of ``budget`` steps.

    Rungs double (successive halving): ``T/4, T/2, T`` for ``T = budget // (k - 1)``, keeping
    only rungs of at least ``min_rung`` steps.

    Raises:
        ValueError: If fewer than two candidates are given or the budget is too small to give each
            candidate ``min_rung`` steps.
    """
    if num_candidates < 2:
        raise ValueError(f"num_candidates={num_candidates!r}: a race needs at least two candidates")
    per = budget // (num_candidates - 1)
    if per < min_rung:
        raise ValueError(
            f"budget={budget!r} steps leaves {per} steps per candidate for {num_candidates} "
            f"candidates; give at least {min_rung * (num_candidates - 1)} steps or fewer candidates"
        )
    rungs = sorted({r for r in (per // 4, per // 2, per) if r >= min_rung})
    return RacePlan(rungs=tuple(rungs), steps_per_candidate=per, budget=budget)


def is_diverged(losses: list[float], factor: float = 4.0, smoothing: float = 0.5) -> bool:
    """Whether a loss curve diverged: a non-finite loss, or its EMA above ``factor`` x the first."""
    if not losses:
        return False
    if any(not math.isfinite(v) for v in losses):
        return True
    first = losses[0]
    ema = first
    for v in losses[1:]:
        ema = smoothing * ema + (1 - smoothing) * v
    bound = factor * abs(first) if first != 0 else math.inf
    return ema > bound and ema > first + 1e-8


def is_exploded(losses: list[float], factor: float = 50.0) -> bool:
    """Whether a loss curve blew up: a non-finite loss, or the last above ``factor`` x the first.

    Unlike :func:`is_diverged` this cannot be caused by a few hard batches, so it drops a
    candidate at once; a merely rising curve is judged against the other candidates at the end of
    the rung (:meth:`RaceBook.check_divergence`).
    """
    if not losses:
        return False
    if any(not math.isfinite(v) for v in losses):
        return True
    return abs(losses[-1]) > factor * max(abs(losses[0]), 1e-12)


def paired_gap(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of ``a - b`` over paired steps and its standard error."""
    n = min(len(a), len(b))
    if n == 0:
        return 0.0, math.inf
    d = [x - y for x, y in zip(a[-n:], b[-n:])]
    mean = sum(d) / n
    if n < 2:
        return mean, math.inf
    var = sum((x - mean) ** 2 for x in d) / (n - 1)
    return mean, math.sqrt(var / n)


def clearly_worse(a: list[float], b: list[float], z: float = 2.5, min_rel: float = 0.03) -> bool:
    """Whether losses ``a`` are clearly above the paired losses ``b`` (noise-aware)."""
    mean, se = paired_gap(a, b)
    scale = abs(sum(b[-len(a):]) / max(1, len(b[-len(a):]))) or 1.0
    return mean > z * se and mean > min_rel * scale


@dataclass
class RaceBook:
    """The state of one race: curves, survivors, eliminations and the cost spent.

    Args:
        labels: Candidate labels in order of prior preference (first = the prior's choice).
        plan: The rung plan.
        window: Steps at the end of each rung used for comparison (at least 4).
        z: Standard errors a gap must exceed to eliminate.
        min_rel: Relative gap a candidate must trail by to be eliminated.
    """

    labels: list[str]
    plan: RacePlan
    window: int = 16
    z: float = 2.5
    min_rel: float = 0.03
    curves: dict[str, list[float]] = field(default_factory=dict)
    alive: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.labels:
            raise ValueError("labels=[]: the race needs at least one candidate")
        self.curves = {label: [] for label in self.labels}
        self.alive = list(self.labels)

    def record(self, label: str, loss: float) -> bool:
        """Add one step's loss; return ``False`` (and drop the candidate) if it blew up."""
        self.curves[label].append(float(loss))
        if is_exploded(self.curves[label]):
            self.drop(label, f"diverged at step {len(self.curves[label])} (loss {loss:.4g})")
            return False
        return True

    def check_divergence(self) -> list[str]:
        """At the end of a rung, drop survivors whose loss rose far above their start.

        A rise counts only against the other candidates on the same batches: when every survivor
        rose alike (hard batches, a noisy task), none is dropped; otherwise a risen curve is dropped
        when it also sits clearly above the best survivor's.
        """
        risen = [c for c in self.alive if is_diverged(self.curves[c])]
        calm = [c for c in self.alive if c not in risen]
        if not risen:
            return []
        if calm:
            out = risen
        else:
            def level(c: str) -> float:
                tail = self.curves[c][-max(4, len(self.curves[c]) // 2):]
                return sum(tail) / len(tail)
            best = min(level(c) for c in risen)
            out = [c for c in risen if level(c) > 2.0 * best]
        for c in out:
            self.drop(c, f"diverged by step {len(self.curves[c])} (loss {self.curves[c][-1]:.4g}, "
                         f"started at {self.curves[c][0]:.4g})")
        return out

    def drop(self, label: str, why: str) -> None:
        """Remove ``label`` from the race."""
        if label in self.alive:
            self.alive.remove(label)
            self.dropped[label] = why

    def _window(self, label: str, width: int) -> list[float]:
        return self.curves[label][-width:]

    def leader(self, width: int | None = None) -> str | None:
        """The survivor with the lowest mean loss over the last ``width`` steps."""
        if not self.alive:
            return None
        w = width or self.window
        return min(self.alive, key=lambda c: sum(self._window(c, w)) / max(1, len(self._window(c, w))))

    def rung(self, width: int | None = None) -> list[str]:
        """Compare survivors at a rung; eliminate up to half, only the clearly worse ones."""
        w = max(4, width or self.window)
        lead = self.leader(w)
        if lead is None or len(self.alive) < 2:
            return []
        best = self._window(lead, w)
        worse = [c for c in self.alive if c != lead
                 and clearly_worse(self._window(c, w), best, self.z, self.min_rel)]
        worse.sort(key=lambda c: -sum(self._window(c, w)))
        out = worse[: len(self.alive) // 2]
        for c in out:
            mean, se = paired_gap(self._window(c, w), best)
            self.drop(c, f"clearly behind {lead} at step {len(self.curves[c])} "
                         f"(+{mean:.4g} loss, {mean / se if se > 0 else math.inf:.1f} s.e.)")
        return out

    def winner(self, width: int | None = None) -> str | None:
        """The prior's highest-ranked survivor that is not clearly behind the leader."""
        w = max(4, width or self.window)
        lead = self.leader(w)
        if lead is None:
            return None
        best = self._window(lead, w)
        for c in self.labels:
            if c in self.alive and (c == lead or not clearly_worse(
                    self._window(c, w), best, self.z, self.min_rel)):
                return c
        return lead

    def loser_steps(self, winner: str | None) -> int:
        """Steps spent on candidates other than ``winner``."""
        return sum(len(v) for k, v in self.curves.items() if k != winner)

    def summary(self, winner: str | None) -> dict[str, Any]:
        """A JSON-serialisable record of the race."""
        return {
            "rungs": list(self.plan.rungs),
            "steps_per_candidate": self.plan.steps_per_candidate,
            "budget": self.plan.budget,
            "winner": winner,
            "dropped": dict(self.dropped),
            "curves": {k: [round(v, 6) for v in c] for k, c in self.curves.items()},
            "loser_steps": self.loser_steps(winner),
        }
