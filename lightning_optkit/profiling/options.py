"""Validation of the bottleneck profiler's arguments (a clear ``ValueError`` at construction)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from lightning_optkit._checks import as_choice, as_float, as_int, fail

__all__ = ["FORMATS", "DEVICE_TIMINGS", "check_options"]

#: Report file formats.
FORMATS = ("json", "md", "html")
#: Choices of ``device_timing``.
DEVICE_TIMINGS = ("auto", "events", "host", "off")


def check_options(*, filename: str, formats: Sequence[str], sample_every_n_steps: int, sync_every_n_steps: int,
                  timeline_points: int, warmup_steps: int, deep_window_steps: int, deep_window_start: int,
                  device_timing: str, trace_max_mb: float, skip_empty_hooks: Any) -> None:
    """Raise ``ValueError`` naming the argument, its value, what is allowed and a fix, for the first bad one.

    The arguments are those of :class:`lightning_optkit.BottleneckProfiler` (declared, with their
    defaults, there only).
    """
    as_int("sample_every_n_steps", sample_every_n_steps, minimum=1, example=25)
    as_int("sync_every_n_steps", sync_every_n_steps, minimum=1, example=200)
    as_int("timeline_points", timeline_points, minimum=1, example=96)
    as_int("warmup_steps", warmup_steps, minimum=0, example=1)
    as_int("deep_window_steps", deep_window_steps, minimum=0, example=3)  # 0 turns the window off
    as_int("deep_window_start", deep_window_start, minimum=0, example=10)
    if isinstance(formats, str) or not isinstance(formats, Sequence) or not formats:
        raise fail("formats", formats, f"expected a non-empty list of {', '.join(map(repr, FORMATS))}",
                   "pass e.g. formats=['json', 'html']")
    for i, fmt in enumerate(formats):
        as_choice(f"formats[{i}]", fmt, FORMATS, fix="keep the report formats among them, e.g. formats=['json', 'html']")
    if not isinstance(filename, str) or not filename or os.sep in filename:
        raise fail("filename", filename, "expected a plain file name, without a directory",
                   "put the directory in dirpath and pass e.g. filename='bottlenecks'")
    as_choice("device_timing", device_timing, DEVICE_TIMINGS,
              fix="device_timing='auto' reads CUDA events on a GPU and the host clock elsewhere")
    as_float("trace_max_mb", trace_max_mb, low=0.0, low_open=True, example=50)
    if not isinstance(skip_empty_hooks, bool):
        raise fail("skip_empty_hooks", skip_empty_hooks, "expected True or False",
                   "leave it False (the default) to measure the run as it is; True opts in to a faster hook "
                   "dispatch that the report states")
