"""The measured check: which precision each probe step runs in, and what the steps measured.

The probe spends real training steps (they update the model like any other) in each candidate
precision. The schedule interleaves the candidates in rounds, in ``ABBA`` order with ``32-true``
first (the reference), so slow drift of the machine (thermal, other processes) does not favour one
of them. The first steps after each switch are warm-up and are not timed; skipped fp16 steps are
timed apart and used only when a candidate has no clean timed step (they do less work).

Early rejection keeps the probe cheap where half precision is hopeless (bf16 emulated on an AVX2
CPU runs many times slower): once fp32 has a median, two consecutive *timed* steps of a candidate
(warm-up steps, which pay one-off costs, never count) that each take more than ``reject_factor``
times that median drop the candidate's remaining probe steps. Two, so that one stall of a shared
machine does not reject a fast candidate; the choice itself compares medians, which one slow step
cannot move.

Every step's time is kept (``spent``), so the probe's whole cost can be stated against running the
chosen precision from the start.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from lightning_optkit.precision.decision import Measurement
from lightning_optkit.precision.options import ProbePlan

__all__ = ["ProbeRecorder", "StepClock", "probe_schedule"]


def probe_schedule(plan: ProbePlan, candidates: Sequence[str]) -> list[tuple[str, bool]]:
    """``(precision, timed)`` for each probe step of ``candidates``, in order.

    ABBA rounds with the reference (``32-true``) first; ``plan.warmup_steps`` untimed steps on a
    candidate's first visit, one on later switches, none when the same precision continues.
    """
    out: list[tuple[str, bool]] = []
    per_round = [plan.steps // plan.rounds + (1 if r < plan.steps % plan.rounds else 0)
                 for r in range(plan.rounds)]
    reference = _reference(candidates)
    base = tuple(c for c in candidates if c == reference) + tuple(c for c in candidates if c != reference)
    for r, timed in enumerate(per_round):
        order = base if r % 2 == 0 else tuple(reversed(base))
        for name in order:
            warm = plan.warmup_steps if r == 0 else 1
            if out and out[-1][0] == name:  # same precision continues: no switch to warm up
                warm = 0
            out += [(name, False)] * warm + [(name, True)] * timed
    return out


def _reference(candidates: Sequence[str]) -> str | None:
    """The precision the others are compared with (``32-true`` when it is a candidate)."""
    return "32-true" if "32-true" in candidates else None


@dataclass
class ProbeRecorder:
    """Walks the probe's schedule one step at a time and keeps what each step measured.

    Attributes:
        plan: How many steps, rounds and warm-ups; the early-rejection factor.
        candidates: The precisions to compare.
        reject_early: Drop a hopeless candidate's remaining steps (off under DDP, where every
            rank must run the same schedule).
    """

    plan: ProbePlan
    candidates: tuple[str, ...]
    reject_early: bool = True
    index: int = 0
    times: dict[str, list[float]] = field(default_factory=dict)
    finite: dict[str, bool] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    skipped_times: dict[str, list[float]] = field(default_factory=dict)
    spent: float = 0.0
    timed_steps: int = 0

    def __post_init__(self) -> None:
        self.candidates = tuple(self.candidates)
        self._schedule = probe_schedule(self.plan, self.candidates)
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
        if seconds is not None and math.isfinite(seconds):
            self.spent += float(seconds)
            self.timed_steps += 1
        if timed and seconds is not None and math.isfinite(seconds):
            # a skipped fp16 step did no update: timed apart, used only if no clean step was timed
            (self.skipped_times if skipped else self.times).setdefault(name, []).append(float(seconds))
        if timed:
            self._maybe_reject(name, seconds, skipped)
        self._visit += 1
        self.index += 1

    def _maybe_reject(self, name: str, seconds: float | None, skipped: bool) -> None:
        ref = _reference(self.candidates)
        ref_times = self.times.get(ref or "", [])
        if not self.reject_early or name == ref or not ref_times or seconds is None or skipped:
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
        for name in self.candidates:
            if name not in self.finite:
                continue
            times = self.times.get(name, []) or self.skipped_times.get(name, [])
            median = statistics.median(times) * 1000.0 if times else math.nan
            if name in self.rejected:  # too slow to be worth more steps: it cannot win
                median = max(median, float(self.plan.reject_factor) * self._ref_ms()) if times else math.inf
            out[name] = Measurement(name, median, len(times), self.finite[name])
        return out

    def cost_seconds(self, chosen: str) -> float | None:
        """Seconds the probe's steps took beyond running ``chosen`` at its median throughout."""
        times = self.times.get(chosen, [])
        if not times or not self.timed_steps:
            return None
        return max(0.0, self.spent - self.timed_steps * statistics.median(times))

    def _ref_ms(self) -> float:
        ref_times = self.times.get(_reference(self.candidates) or "", [])
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


class StepClock:
    """Wall time of probe steps, the device drained at both ends so a step pays only for itself.

    :meth:`enter` at the start of an optimizer step, :meth:`lap` at its end; with gradient
    accumulation the micro-batches ran before the step, so the lap runs from the previous
    step's end (:meth:`mark_exit`) instead.
    """

    def __init__(self) -> None:
        self._start: float | None = None
        self._last_exit: float | None = None

    @staticmethod
    def sync(device_type: str) -> None:
        """Wait for the device's queued work (nothing on the CPU)."""
        module = getattr(torch, device_type, None)
        if device_type != "cpu" and module is not None and hasattr(module, "synchronize"):
            module.synchronize()

    def enter(self, device_type: str) -> None:
        """Mark the start of a step."""
        self.sync(device_type)
        self._start = time.perf_counter()

    def lap(self, device_type: str, whole_step: bool) -> float | None:
        """Seconds of the step just run: since :meth:`enter` when ``whole_step`` (forward,
        backward and optimizer step in one call), else since the previous :meth:`mark_exit`."""
        self.sync(device_type)
        now = time.perf_counter()
        if whole_step and self._start is not None:
            seconds: float | None = now - self._start
        else:
            seconds = None if self._last_exit is None else now - self._last_exit
        self._start = None
        return seconds

    def mark_exit(self) -> None:
        """Mark the end of a step's bookkeeping (the start of the next accumulation window)."""
        self._last_exit = time.perf_counter()
