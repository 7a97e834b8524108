"""The measured check: which precision each probe step runs in, and what the steps measured.

The probe spends real training steps (they update the model like any other) in each candidate
precision. The schedule interleaves the candidates in rounds, in ``ABBA`` order with ``32-true``
first (the reference), so slow drift of the machine (thermal, other processes) does not favour one
of them. The first steps after each switch are warm-up and are not timed; skipped fp16 steps are
timed apart and used only when a candidate has no clean timed step (they do less work).

Early rejection keeps the probe cheap where half precision is hopeless (bf16 emulated on an AVX2
CPU runs many times slower): once fp32 has a median, two consecutive steps of a candidate (not
counting the first after a switch, which pays one-off costs) that each take more than
``reject_factor`` times that median drop the candidate's remaining probe steps. Two, so that one
stall of a shared machine does not reject a fast candidate.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from lightning_optkit.precision.decision import Measurement

__all__ = ["ProbePlan", "ProbeRecorder", "validate_probe_options"]


def validate_probe_options(warmup_steps: int, steps: int, rounds: int, margin: float,
                           reject_factor: float = 2.0) -> None:
    """Raise ``ValueError`` naming a bad probe argument."""
    if not (isinstance(reject_factor, (int, float)) and reject_factor > 1):
        raise ValueError(f"probe_reject_factor={reject_factor!r} must be greater than 1, such as 2.0 "
                         "(a candidate twice as slow as fp32 stops being probed)")
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
        reject_factor: A candidate step slower than this many fp32 medians ends its probing.
    """

    candidates: tuple[str, ...]
    warmup_steps: int = 2
    steps: int = 6
    rounds: int = 2
    reject_factor: float = 2.0

    @property
    def reference(self) -> str | None:
        """The precision the others are compared with (``32-true`` when it is a candidate)."""
        return "32-true" if "32-true" in self.candidates else None

    def schedule(self) -> list[tuple[str, bool]]:
        """``(precision, timed)`` for each probe step, in order."""
        out: list[tuple[str, bool]] = []
        per_round = [self.steps // self.rounds + (1 if r < self.steps % self.rounds else 0)
                     for r in range(self.rounds)]
        first = tuple(c for c in self.candidates if c == self.reference)
        base = first + tuple(c for c in self.candidates if c != self.reference)
        for r, timed in enumerate(per_round):
            order = base if r % 2 == 0 else tuple(reversed(base))
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
    rejected: dict[str, str] = field(default_factory=dict)
    skipped_times: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._schedule = self.plan.schedule()
        self._visit = 0  # steps run since the last switch of precision
        self._slow = 0  # consecutive judged steps slower than reject_factor x the reference

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
        if self.index and self._schedule[self.index - 1][0] != name:
            self._visit = self._slow = 0
        self.finite[name] = self.finite.get(name, True) and bool(finite)
        if timed and seconds is not None and math.isfinite(seconds):
            # a skipped fp16 step did no update: timed apart, used only if no clean step was timed
            (self.skipped_times if skipped else self.times).setdefault(name, []).append(float(seconds))
        self._maybe_reject(name, seconds, skipped)
        self._visit += 1
        self.index += 1

    def _maybe_reject(self, name: str, seconds: float | None, skipped: bool) -> None:
        ref = self.plan.reference
        ref_times = self.times.get(ref or "", [])
        if name == ref or not ref_times or seconds is None or skipped or self._visit == 0:
            return
        ref_ms = statistics.median(ref_times) * 1000.0
        self._slow = self._slow + 1 if seconds * 1000.0 > self.plan.reject_factor * ref_ms else 0
        if self._slow >= 2:
            self.rejected[name] = (f"{name}: rejected early, a step took {seconds * 1000.0:.2f} ms against "
                                   f"{ref}'s median {ref_ms:.2f} ms (> {self.plan.reject_factor:g}x)")
            keep = self._schedule[: self.index + 1]
            self._schedule = keep + [s for s in self._schedule[self.index + 1:] if s[0] != name]

    def measurements(self) -> dict[str, Measurement]:
        """One :class:`Measurement` per candidate that ran at least one step."""
        out: dict[str, Measurement] = {}
        for name in self.plan.candidates:
            if name not in self.finite:
                continue
            times = self.times.get(name, []) or self.skipped_times.get(name, [])
            median = statistics.median(times) * 1000.0 if times else math.nan
            if name in self.rejected:  # too slow to be worth more steps: it cannot win
                median = max(median, float(self.plan.reject_factor) * self._ref_ms()) if times else math.inf
            out[name] = Measurement(name, median, len(times), self.finite[name])
        return out

    def _ref_ms(self) -> float:
        ref_times = self.times.get(self.plan.reference or "", [])
        return statistics.median(ref_times) * 1000.0 if ref_times else math.inf

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
