"""Build the report dictionary, and pack rank summaries into fixed-size vectors for DDP gathers."""

from __future__ import annotations

import math
import zlib
from typing import Any

from lightning_optkit.profiling.measurements import Measurements, RankSummary
from lightning_optkit.profiling.phases import CATEGORIES
from lightning_optkit.profiling.rules import Finding

__all__ = ["REPORT_VERSION", "build_report", "skipped_hooks_notes", "pack_rank", "unpack_rank", "packed_size", "TOP_PHASES"]

REPORT_VERSION = 1
TOP_PHASES = 4
_HEADER = 6  # rank, steps, wall, median, rss_peak, steps_per_point


def packed_size(timeline_points: int) -> int:
    """Length of the vector :func:`pack_rank` produces."""
    width = len(CATEGORIES)
    return _HEADER + width + 2 * TOP_PHASES + 1 + timeline_points * width


def _phase_id(name: str) -> float:
    return float(zlib.crc32(name.encode()))


def pack_rank(summary: RankSummary, timeline_points: int) -> list[float]:
    """Encode ``summary`` as a fixed-length list of floats (the same length on every rank)."""
    width = len(CATEGORIES)
    vector = [float(summary.rank), float(summary.steps), summary.wall_seconds, summary.step_median,
              summary.rss_peak, float(summary.steps_per_point)]
    categories = list(summary.category_seconds) + [0.0] * width
    vector += categories[:width]
    tops = list(summary.top_phases[:TOP_PHASES])
    tops += [("", 0.0)] * (TOP_PHASES - len(tops))
    for name, seconds in tops:
        vector += [_phase_id(name) if name else -1.0, seconds]
    points = summary.timeline[-timeline_points:]
    vector.append(float(len(points)))
    for point in points:
        vector += (list(point) + [0.0] * width)[:width]
    vector += [0.0] * (packed_size(timeline_points) - len(vector))
    return vector


def unpack_rank(vector: list[float], names: list[str]) -> RankSummary:
    """Decode a vector of :func:`pack_rank`; ``names`` resolves the phase ids (unknown ones keep their id)."""
    width = len(CATEGORIES)
    lookup = {_phase_id(n): n for n in names}
    rank, steps, wall, median, rss, per_point = vector[:_HEADER]
    at = _HEADER
    categories = list(vector[at:at + width])
    at += width
    tops = []
    for _ in range(TOP_PHASES):
        pid, seconds = vector[at], vector[at + 1]
        at += 2
        if pid >= 0:
            tops.append((lookup.get(pid, f"phase#{int(pid)}"), seconds))
    count = int(vector[at])
    at += 1
    timeline = [list(vector[at + i * width: at + (i + 1) * width]) for i in range(count)]
    return RankSummary(rank=int(rank), steps=int(steps), wall_seconds=wall, step_median=median,
                       category_seconds=categories, top_phases=tops, rss_peak=rss, timeline=timeline,
                       steps_per_point=max(int(per_point), 1))


def _round(value: Any, digits: int = 6) -> Any:
    if isinstance(value, float):
        return round(value, digits) if math.isfinite(value) else None
    return value


def skipped_hooks_notes(count: int) -> list[str]:
    """The report's note on ``skip_empty_hooks=True``: the run measured is not the run as written.

    Args:
        count: Empty per-batch hooks that Lightning skipped during the fit.
    """
    return [
        f"skip_empty_hooks=True: Lightning skipped {count} empty per-batch hook(s) nobody overrode during the fit. "
        "Nothing the user wrote stopped running, but each skipped hook saves a few microseconds per step, so the "
        "step times here are faster than the same run without the profiler. Leave skip_empty_hooks=False (the "
        "default) to compare runs with and without it."
    ]


def build_report(
    m: Measurements,
    findings: list[Finding],
    *,
    decisions: dict[str, Any] | None = None,
    throughput: dict[str, Any] | None = None,
    memory: dict[str, Any] | None = None,
    timeline: list[list[float]] | None = None,
    steps_per_point: int = 1,
    status: str = "finished",
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Assemble the JSON-serialisable report.

    Args:
        m: The run's measurements.
        findings: The diagnosis, already ordered.
        decisions: What other components decided (``_trainer.run_notes(trainer).decisions``).
        throughput: Samples/s, FLOP/s and utilisation.
        memory: Memory figures in MB.
        timeline: Mean seconds per step by category for each timeline point (rank zero's).
        steps_per_point: Steps per timeline point.
        status: ``"finished"`` or ``"interrupted: <exception>"``.
        notes: What the profiler changed in the run it measured (shown above the findings).
    """
    wall = m.wall_seconds
    excluded_seconds = dict(m.excluded_seconds)
    excluded_steps = dict(m.excluded_steps)
    race = (decisions or {}).get("optimizer") or {}
    if race.get("overhead_steps") and "optimizer_race" not in excluded_seconds:
        # the race runs before the first step (in on_train_start): its cost comes from its record
        excluded_seconds["optimizer_race"] = float(race.get("overhead_seconds") or 0.0)
        excluded_steps["optimizer_race"] = int(race["overhead_steps"])
    total = wall + sum(excluded_seconds.values())
    phases = {
        name: {"seconds": _round(seconds), "share": _round(seconds / wall if wall > 0 else 0.0, 4)}
        for name, seconds in sorted(m.phase_seconds.items(), key=lambda item: item[1], reverse=True)
    }
    excluded = {
        kind: {"steps": excluded_steps.get(kind, 0), "seconds": _round(seconds),
               "share_of_total": _round(seconds / total if total > 0 else 0.0, 4)}
        for kind, seconds in excluded_seconds.items()
    }
    ranks = [
        {
            "rank": r.rank,
            "steps": r.steps,
            "wall_seconds": _round(r.wall_seconds),
            "step_median_ms": _round(r.step_median * 1e3, 3),
            "rss_peak_mb": _round(r.rss_peak / 2**20, 1),
            "categories": {c: _round(s) for c, s in zip(CATEGORIES, r.category_seconds)},
            "top_phases": [[name, _round(seconds)] for name, seconds in r.top_phases],
            "timeline": [[_round(v, 7) for v in point] for point in r.timeline],
            "steps_per_point": r.steps_per_point,
        }
        for r in m.ranks
    ]
    return {
        "version": REPORT_VERSION,
        "status": status,
        "notes": list(notes or []),
        "steps_measured": m.steps,
        "wall_seconds": _round(wall),
        "step_time": {"median": _round(m.step_median), "p90": _round(m.step_p90), "max": _round(m.step_max)},
        "phases": phases,
        "excluded": excluded,
        "throughput": {k: _round(v) for k, v in (throughput or {}).items()},
        "memory": {k: _round(v) for k, v in (memory or {}).items()},
        "compile": {"graphs": m.graphs, "recompiles": m.recompiles},
        "device_time": {k: _round(v) for k, v in m.device_seconds.items()},
        "device": m.device.as_dict(),
        "deep_window": m.deep_window,
        "ranks": ranks,
        "findings": [f.as_dict() for f in findings],
        "decisions": decisions or {},
        "timeline": {
            "categories": list(CATEGORIES),
            "steps_per_point": steps_per_point,
            "points": [[_round(v, 7) for v in point] for point in (timeline or [])],
        },
    }
