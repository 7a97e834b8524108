"""Validation of the bottleneck profiler's arguments (a clear ``ValueError`` at construction)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

__all__ = ["FORMATS", "DEVICE_TIMINGS", "check_options"]

#: Report file formats.
FORMATS = ("json", "md", "html")
#: Choices of ``device_timing``.
DEVICE_TIMINGS = ("auto", "events", "host", "off")


def _positive(name: str, value: Any, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer; {hint}")


def check_options(*, filename: str, formats: Sequence[str], sample_every_n_steps: int, sync_every_n_steps: int,
                  timeline_points: int, warmup_steps: int, deep_window_steps: int, deep_window_start: int,
                  device_timing: str, trace_max_mb: float, skip_empty_hooks: Any = "auto") -> None:
    """Raise ``ValueError`` naming the argument, its value and what is allowed, for the first bad one."""
    _positive("sample_every_n_steps", sample_every_n_steps, "take a sample every 25 steps, for example")
    _positive("sync_every_n_steps", sync_every_n_steps, "gather rank summaries every 200 steps, for example")
    _positive("timeline_points", timeline_points, "96 points draw a readable chart")
    for name, value in (("warmup_steps", warmup_steps), ("deep_window_steps", deep_window_steps),
                        ("deep_window_start", deep_window_start)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}={value!r} must be an integer >= 0 (deep_window_steps=0 turns the window off)")
    if not isinstance(formats, (list, tuple)) or not formats:
        raise ValueError(f"formats={formats!r} must be a non-empty list of {list(FORMATS)}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"formats={list(formats)!r} holds unknown format(s) {unknown}; choose from {list(FORMATS)}")
    if not filename or os.sep in filename:
        raise ValueError(f"filename={filename!r} must be a plain file name such as 'bottlenecks'")
    if device_timing not in DEVICE_TIMINGS:
        raise ValueError(f"device_timing={device_timing!r} must be one of 'auto', 'events', 'host', 'off'")
    if not trace_max_mb > 0:
        raise ValueError(f"trace_max_mb={trace_max_mb!r} must be > 0, such as 50")
    if not (isinstance(skip_empty_hooks, bool) or skip_empty_hooks == "auto"):
        raise ValueError(f"skip_empty_hooks={skip_empty_hooks!r} must be True, False or 'auto' (skip them unless a "
                         "profiler set on the Trainer should see every hook)")
