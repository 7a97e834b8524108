"""The plain-value record of one run that the diagnosis rules read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lightning_optkit.profiling.sampling import DeviceInfo

__all__ = ["RankSummary", "Measurements"]


@dataclass
class RankSummary:
    """Fixed-size measurements of one rank (what rank zero gathers under DDP).

    Attributes:
        rank: Global rank.
        steps: Ordinary steps measured.
        wall_seconds: Their total wall time.
        step_median: Median step time in seconds.
        category_seconds: Seconds per chart category (:data:`~lightning_optkit.profiling.phases.CATEGORIES`).
        top_phases: The rank's largest phases, ``(name, seconds)``.
        rss_peak: Peak resident memory in bytes.
        timeline: Mean seconds per step by category for each timeline point.
        steps_per_point: Steps per timeline point.
    """

    rank: int = 0
    steps: int = 0
    wall_seconds: float = 0.0
    step_median: float = 0.0
    category_seconds: list[float] = field(default_factory=list)
    top_phases: list[tuple[str, float]] = field(default_factory=list)
    rss_peak: float = 0.0
    timeline: list[list[float]] = field(default_factory=list)
    steps_per_point: int = 1


@dataclass
class Measurements:
    """Everything measured in a run, as plain values.

    Attributes:
        steps: Ordinary (not excluded) steps measured.
        wall_seconds: Wall time of those steps.
        phase_seconds: Exclusive seconds per phase over those steps.
        step_median: Median step time (s).
        step_p90: 90th percentile step time (s).
        step_max: Longest step (s).
        batch_size: Samples per batch (mean of the sampled batches), if known.
        log_calls: ``LightningModule.log`` calls in ordinary steps.
        validation_runs: Validation runs during the measured steps.
        checkpoint_saves: Checkpoints saved.
        device: The accelerator and data loader facts.
        memory_samples: ``(step, bytes)`` samples of the process (or allocator) memory.
        memory_peak: Peak bytes of the memory the samples track.
        memory_total: Bytes available to it (device or system memory).
        alloc_retries: CUDA allocator retries (``None`` off CUDA).
        recompiles: Steps in which ``torch.compile`` compiled a new graph (after warm-up).
        recompile_seconds: Wall time of those steps.
        graphs: Graphs compiled in the run.
        deep_window: Summary of a ``torch.profiler`` window, or ``None``.
        ranks: Per-rank summaries (one entry per rank under DDP).
        excluded_seconds: Seconds of steps spent on warm-up, searches and deep windows.
        excluded_steps: The number of such steps by kind.
        locations: Phase name -> ``file:line`` of the code that runs it.
        val_check_interval: The trainer's validation interval setting, for evidence.
        device_seconds: Device-side seconds per compute slot (forward, backward, optimizer_step) over
            the measured steps, from CUDA events (or the host clock off-GPU).
    """

    steps: int = 0
    wall_seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    step_median: float = 0.0
    step_p90: float = 0.0
    step_max: float = 0.0
    batch_size: float | None = None
    log_calls: int = 0
    validation_runs: int = 0
    checkpoint_saves: int = 0
    device: DeviceInfo = field(default_factory=DeviceInfo)
    memory_samples: list[tuple[float, float]] = field(default_factory=list)
    memory_peak: float | None = None
    memory_total: float | None = None
    alloc_retries: int | None = None
    recompiles: int = 0
    recompile_seconds: float = 0.0
    graphs: int = 0
    deep_window: dict[str, Any] | None = None
    ranks: list[RankSummary] = field(default_factory=list)
    excluded_seconds: dict[str, float] = field(default_factory=dict)
    excluded_steps: dict[str, int] = field(default_factory=dict)
    locations: dict[str, str] = field(default_factory=dict)
    val_check_interval: Any = None
    device_seconds: dict[str, float] = field(default_factory=dict)

    def share(self, *phases: str) -> float:
        """Share of the measured wall time spent in ``phases``."""
        if self.wall_seconds <= 0:
            return 0.0
        return sum(self.phase_seconds.get(p, 0.0) for p in phases) / self.wall_seconds

    def per_step_ms(self, *phases: str) -> float:
        """Milliseconds per ordinary step spent in ``phases``."""
        if self.steps <= 0:
            return 0.0
        return 1e3 * sum(self.phase_seconds.get(p, 0.0) for p in phases) / self.steps

    def prefixed(self, prefix: str) -> dict[str, float]:
        """Phases whose name starts with ``prefix`` and their seconds."""
        return {p: s for p, s in self.phase_seconds.items() if p.startswith(prefix)}
