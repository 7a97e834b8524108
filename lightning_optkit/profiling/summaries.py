"""The report's summaries beside the diagnosis: category shares, throughput, memory and device time.

Plain functions of plain values (no ``Trainer``): the callback measures, these summarise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lightning_optkit.profiling.measurements import Measurements
from lightning_optkit.profiling.phases import CATEGORIES, EXCLUDED_CATEGORY

__all__ = ["DEVICE_PHASES", "share_metrics", "throughput_summary", "memory_summary", "device_seconds"]

#: The phases a device timer splits (forward, backward, optimizer update).
DEVICE_PHASES = ("forward", "backward", "optimizer_step")


def share_metrics(category_seconds: Sequence[float]) -> dict[str, float]:
    """``bottleneck/<category>`` -> share of the measured time (the excluded category left out).

    Args:
        category_seconds: Seconds per chart category, in the order of
            :data:`~lightning_optkit.profiling.phases.CATEGORIES`.
    """
    pairs = [(c, s) for i, (c, s) in enumerate(zip(CATEGORIES, category_seconds)) if i != EXCLUDED_CATEGORY]
    wall = sum(s for _, s in pairs) or 1.0
    return {f"bottleneck/{c}": s / wall for c, s in pairs}


def throughput_summary(m: Measurements, batch_size: float | None = None, flops: int | None = None,
                       peak: float | None = None) -> dict[str, Any]:
    """Steps/s, samples/s, FLOPs per step, achieved FLOP/s and utilisation of the peak where known.

    Args:
        m: The run's measurements (steps, wall time, median step).
        batch_size: Mean samples per batch, if measured.
        flops: FLOPs of one training step, if counted.
        peak: The device's peak FLOP/s at the run's precision, if known.
    """
    wall = m.wall_seconds
    summary: dict[str, Any] = {"steps_per_second": m.steps / wall if wall else None, "batch_size": batch_size}
    if batch_size and wall:
        summary["samples_per_second"] = batch_size * m.steps / wall
    if flops and m.step_median:
        summary["flops_per_step"] = float(flops)
        summary["flops_per_second"] = flops / m.step_median
        summary["flop_utilisation"] = flops / m.step_median / peak if peak else None
    return summary


def memory_summary(samples: Sequence[tuple[float, float]], peak: float = 0.0,
                   alloc: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Start, end and peak of the sampled memory in MB (CUDA allocator, else process RSS).

    Args:
        samples: ``(step, bytes)`` memory samples in step order.
        peak: Highest memory seen, in bytes (0: none).
        alloc: The CUDA allocator's figures (``reserved_peak``, ``alloc_retries``), or ``None`` off CUDA.
    """
    summary: dict[str, Any] = {
        "kind": "cuda_allocated" if alloc else "process_rss",
        "start_mb": samples[0][1] / 2**20 if samples else None,
        "end_mb": samples[-1][1] / 2**20 if samples else None,
        "peak_mb": peak / 2**20 if peak else None,
    }
    if alloc:
        summary["reserved_peak_mb"] = alloc["reserved_peak"] / 2**20
        summary["alloc_retries"] = alloc["alloc_retries"]
    return summary


def device_seconds(timer_totals: Mapping[str, float] | None, phase_seconds: Mapping[str, float]) -> dict[str, float]:
    """Forward/backward/optimizer seconds on the device: the device timer's, else the host phase times.

    Args:
        timer_totals: The device timer's seconds per slot (read after its last poll), or ``None``
            without a device timer.
        phase_seconds: Host seconds per phase: without a separate device clock the host is the
            device, and its phase times are the device times.
    """
    if timer_totals is not None:
        return {k: v for k, v in timer_totals.items() if v}
    return {k: phase_seconds[k] for k in DEVICE_PHASES if phase_seconds.get(k)}
