"""Constant-memory statistics of a run: a log-binned histogram and a downsampled timeline."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["LogHistogram", "Timeline", "BoundedSeries"]

_BINS_PER_DECADE = 64
_LOW_EXP = -7  # 100 ns
_DECADES = 11  # up to 10,000 s


@dataclass
class LogHistogram:
    """Step times in logarithmic bins (3.7 % wide): quantiles in constant memory.

    The exact maximum, sum and count are kept as well.
    """

    counts: list[int] = field(default_factory=lambda: [0] * (_BINS_PER_DECADE * _DECADES))
    count: int = 0
    total: float = 0.0
    maximum: float = 0.0

    def add(self, seconds: float) -> None:
        """Record one value in seconds."""
        self.count += 1
        self.total += seconds
        if seconds > self.maximum:
            self.maximum = seconds
        if seconds <= 0.0:
            index = 0
        else:
            index = int((math.log10(seconds) - _LOW_EXP) * _BINS_PER_DECADE)
            index = min(max(index, 0), len(self.counts) - 1)
        self.counts[index] += 1

    def add_many(self, values: list[float]) -> None:
        """Record several values in seconds (the same as ``add`` for each, in one call)."""
        counts, last = self.counts, len(self.counts) - 1
        log10 = math.log10
        maximum, total = self.maximum, self.total
        for seconds in values:
            total += seconds
            if seconds > maximum:
                maximum = seconds
            if seconds <= 0.0:
                index = 0
            else:
                index = int((log10(seconds) - _LOW_EXP) * _BINS_PER_DECADE)
                index = 0 if index < 0 else last if index > last else index
            counts[index] += 1
        self.maximum, self.total = maximum, total
        self.count += len(values)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1) in seconds, at the geometric centre of its bin (0 if empty)."""
        if self.count == 0:
            return 0.0
        rank = q * (self.count - 1)
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen > rank:
                value = 10.0 ** (_LOW_EXP + (index + 0.5) / _BINS_PER_DECADE)
                return min(value, self.maximum)
        return self.maximum

    @property
    def mean(self) -> float:
        """Mean value in seconds (0 if empty)."""
        return self.total / self.count if self.count else 0.0


@dataclass
class Timeline:
    """Running totals marked every ``steps_per_point`` steps, in at most ``capacity`` marks.

    A mark is a copy of the running totals ``[steps, counter_0, counter_1, ...]``; a point of the
    chart is the difference of two consecutive marks. Marking costs one list copy. When the marks
    run out, every second one is dropped (the points merge in pairs) and ``steps_per_point``
    doubles, so memory stays constant however long the run.

    Args:
        capacity: Maximum number of points (at least 1).
    """

    capacity: int = 96
    steps_per_point: int = 1
    marks: list[list[int]] = field(default_factory=list)

    def mark(self, totals: list[int]) -> None:
        """Record the running totals (``totals[0]`` is the number of steps so far); the list is kept as is."""
        marks = self.marks
        marks.append(totals)
        if len(marks) >= self.capacity + self.capacity % 2:
            # an even number of marks: keep every second one, ending with this one (points merge in pairs)
            del marks[::2]
            self.steps_per_point *= 2

    def per_step(self, groups: list[int], width: int, scale: float = 1.0) -> list[list[float]]:
        """Each point's increase per step, summed by group.

        Args:
            groups: Group of each counter (``groups[i]`` for ``totals[i + 1]``); a counter that appeared
                after a mark counts as 0 in it.
            width: Number of groups.
            scale: Factor applied to the counters (``1e-9`` turns nanoseconds into seconds).
        """
        rows = []
        previous: list[int] = [0]
        for totals in self.marks:
            steps = totals[0] - previous[0]
            row = [0.0] * width
            for i, group in enumerate(groups):
                now = totals[i + 1] if i + 1 < len(totals) else 0
                before = previous[i + 1] if i + 1 < len(previous) else 0
                if now != before:
                    row[group] += (now - before) * scale / max(steps, 1)
            rows.append(row)
            previous = totals
        return rows


@dataclass
class BoundedSeries:
    """``(x, y)`` samples kept in at most ``capacity`` entries by dropping every second one."""

    capacity: int = 64
    stride: int = 1
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    last: tuple[float, float] | None = None
    _seen: int = 0

    def add(self, x: float, y: float) -> None:
        """Offer one sample; it is kept when it falls on the current stride (the last always is)."""
        self.last = (x, y)
        self._seen += 1
        if (self._seen - 1) % self.stride:
            return
        self.xs.append(x)
        self.ys.append(y)
        if len(self.xs) >= self.capacity:
            self.xs = self.xs[::2]
            self.ys = self.ys[::2]
            self.stride *= 2

    def samples(self) -> list[tuple[float, float]]:
        """The kept samples, ending with the most recent one."""
        pairs = list(zip(self.xs, self.ys))
        if self.last is not None and (not pairs or pairs[-1] != self.last):
            pairs.append(self.last)
        return pairs
