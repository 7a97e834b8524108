"""Occasional probes of the bottleneck profiler: a deep ``torch.profiler`` window and a FLOP count."""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn

from lightning_optkit.profiling.deep import summarise_window

__all__ = ["DeepWindow", "FlopProbe"]


class DeepWindow:
    """A ``torch.profiler`` window over steps ``[start, start + steps)``, summarised when it closes."""

    def __init__(self, start: int, steps: int) -> None:
        self.start = start
        self.steps = steps
        self.summary: dict[str, Any] | None = None
        self._prof: Any = None
        self._opened_at = 0

    @property
    def active(self) -> bool:
        return self._prof is not None

    def covers(self, index: int) -> bool:
        """Whether step ``index`` lies inside the window."""
        return self.steps > 0 and self.start <= index < self.start + self.steps

    def open(self, device: torch.device) -> None:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        self._prof = profile(activities=activities, with_stack=True, record_shapes=False)
        self._prof.__enter__()

    def close(self, trace_path: str | None, trace_max_mb: float = 50.0, steps_done: int | None = None) -> None:
        """Stop the window (if open), summarise it and export the trace when asked."""
        prof, self._prof = self._prof, None
        if prof is None:
            return
        prof.__exit__(None, None, None)
        self.summary = summarise_window(prof.events(), steps_done or self.steps)
        if trace_path is None:
            return
        prof.export_chrome_trace(trace_path)
        size_mb = os.path.getsize(trace_path) / 2**20
        if size_mb > trace_max_mb:
            os.unlink(trace_path)
            rank_zero_warn(
                f"The deep-window trace was {size_mb:.1f} MB, over trace_max_mb={trace_max_mb}; it was deleted. "
                "Raise trace_max_mb or shorten deep_window_steps."
            )
        else:
            self.summary["trace"] = os.path.basename(trace_path)


class FlopProbe:
    """Counts the FLOPs of one training step with ``torch.utils.flop_counter.FlopCounterMode``."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.flops: int | None = None
        self._mode: Any = None

    def open(self, module: torch.nn.Module) -> None:
        if _is_compiled(module):
            return  # a dispatch mode around a compiled graph would force a recompilation
        from torch.utils.flop_counter import FlopCounterMode

        self._mode = FlopCounterMode(display=False)
        self._mode.__enter__()

    def close(self) -> None:
        mode, self._mode = self._mode, None
        if mode is None:
            return
        mode.__exit__(None, None, None)
        self.flops = int(mode.get_total_flops()) or None


def _is_compiled(module: torch.nn.Module) -> bool:
    if getattr(module, "_compiler_ctx", None):
        return True
    try:
        from torch._dynamo.eval_frame import OptimizedModule
    except Exception:
        return False
    return any(isinstance(m, OptimizedModule) for m in module.modules())

