"""The measured check: which precision each probe step runs in, and what the steps measured.

The probe spends real training steps (they update the model like any other) in each candidate
precision. The schedule interleaves the candidates in rounds, in ``ABBA`` order, so slow drift of
the machine (thermal, other processes) does not favour one of them. The first steps after each
switch are warm-up and are not timed; skipped fp16 steps are not timed either (they do less work).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from lightning_optkit.precision.decision import Measurement

__all__ = ["ProbePlan", "ProbeRecorder", "validate_probe_options"]


def validate_probe_options(warmup_steps: int, steps: int, rounds: int, margin: float) -> None:
    """Raise ``ValueError`` naming a bad probe argument."""
    if not (isinstance(warmup_steps, int) and warmup_steps >= 1):
        raise ValueError(f"probe_warmup_steps={warmup_steps!r} must be an integer >= 1 (the first "
                         "step after a switch pays one-off costs), such as 2")
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"probe_steps={steps!r} must be a positive integer, such as 6")
    if not (isinstance(rounds, int) and rounds >= 1):
        raise ValueError(f"probe_rounds={rounds!r} must be a positive integer, such as 2")
    if not (isinstance(margin, (int, float)) and 0 <= margin < 1):
        raise ValueError(f"probe_margin={margin!r} must lie in [0, 1), such as 0.03 (half precision "
                         "must be 3% faster than fp32 to be kept)")


@dataclass(frozen=True)
class ProbePlan:
    """The probe's step schedule.

    Attributes:
        candidates: Precisions to compare.
        warmup_steps: Untimed steps the first time a candidate runs (later switches: one).
        steps: Timed steps per candidate in total, spread over the rounds.
        rounds: Times each candidate is visited.
    """

    candidates: tuple[str, ...]
    warmup_steps: int = 2
    steps: int = 6
    rounds: int = 2

    def schedule(self) -> list[tuple[str, bool]]:
        """``(precision, timed)`` for each probe step, in order."""
        out: list[tuple[str, bool]] = []
        per_round = [self.steps // self.rounds + (1 if r < self.steps % self.rounds else 0)
                     for r in range(self.rounds)]
        for r, timed in enumerate(per_round):
            order = self.candidates if r % 2 == 0 else tuple(reversed(self.candidates))
            for name in order:
                warm = self.warmup_steps if r == 0 else 1
                if out and out[-1][0] == name:  # same precision continues: no switch to warm up
                    warm = 0
                out += [(name, False)] * warm + [(name, True)] * timed
        return out


@dataclass
class ProbeRecorder:
    """Walks a :class:`ProbePlan` one step at a time and keeps what each step measured."""

    plan: ProbePlan
    index: int = 0
    times: dict[str, list[float]] = field(default_factory=dict)
    finite: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._schedule = self.plan.schedule()

    @property
    def total_steps(self) -> int:
        """Steps the whole probe takes."""
        return len(self._schedule)

    @property
    def done(self) -> bool:
        """Every scheduled step was recorded."""
        return self.index >= len(self._schedule)

    def current(self) -> str | None:
        """The precision of the next step, or ``None`` when the probe is over."""
        return None if self.done else self._schedule[self.index][0]

    def record(self, seconds: float | None, finite: bool, skipped: bool = False) -> None:
        """Record the step just run in :meth:`current` and move on."""
        if self.done:
            return
        name, timed = self._schedule[self.index]
        self.finite[name] = self.finite.get(name, True) and bool(finite)
        if timed and seconds is not None and not skipped and math.isfinite(seconds):
            self.times.setdefault(name, []).append(float(seconds))
        self.index += 1

    def measurements(self) -> dict[str, Measurement]:
        """One :class:`Measurement` per candidate that ran at least one step."""
        out: dict[str, Measurement] = {}
        for name in self.plan.candidates:
            if name not in self.finite:
                continue
            times = self.times.get(name, [])
            median = statistics.median(times) * 1000.0 if times else math.nan
            out[name] = Measurement(name, median, len(times), self.finite[name])
        return out

    @staticmethod
    def encode(measurements: dict[str, Measurement], names: Sequence[str]) -> list[float]:
        """Flatten measurements of ``names`` into ``[ms, steps, finite] * len(names)`` for a collective."""
        row: list[float] = []
        for name in names:
            m = measurements.get(name)
            row += [math.nan, 0.0, 1.0] if m is None else [m.median_ms, float(m.steps), float(m.finite)]
        return row

    @staticmethod
    def decode(row: Sequence[float], names: Sequence[str]) -> dict[str, Measurement]:
        """Inverse of :meth:`encode` (entries with no step and no time are dropped)."""
        out: dict[str, Measurement] = {}
        for i, name in enumerate(names):
            ms, steps, finite = row[3 * i: 3 * i + 3]
            out[name] = Measurement(name, float(ms), int(steps), bool(finite >= 0.5))
        return out
