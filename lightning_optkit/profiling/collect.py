"""Turn an accountant's counters and the periodic samples into :class:`Measurements`."""

from __future__ import annotations

from typing import Any

from lightning_optkit.profiling.accounting import PhaseAccountant
from lightning_optkit.profiling.measurements import Measurements, RankSummary
from lightning_optkit.profiling.sampling import DeviceInfo

__all__ = ["rank_summary", "measurements_from"]


def rank_summary(acct: PhaseAccountant, rank: int, rss_peak: float, top: int = 4) -> RankSummary:
    """This process's fixed-size summary."""
    phases = acct.phase_seconds()
    ranked = sorted(phases.items(), key=lambda item: item[1], reverse=True)
    return RankSummary(
        rank=rank,
        steps=acct.steps,
        wall_seconds=sum(phases.values()),
        step_median=acct.step_times.quantile(0.5),
        category_seconds=acct.category_seconds(),
        top_phases=[(n, s) for n, s in ranked if n not in ("forward", "backward", "other")][:top],
        rss_peak=rss_peak,
        timeline=acct.timeline_per_step(),
        steps_per_point=acct.timeline.steps_per_point,
    )


def measurements_from(
    acct: PhaseAccountant,
    *,
    device: DeviceInfo,
    batch_size: float | None = None,
    checkpoint_saves: int = 0,
    memory_samples: list[tuple[float, float]] | None = None,
    memory_peak: float | None = None,
    memory_total: float | None = None,
    alloc_retries: int | None = None,
    recompiles: int = 0,
    recompile_seconds: float = 0.0,
    graphs: int = 0,
    deep_window: dict[str, Any] | None = None,
    ranks: list[RankSummary] | None = None,
    locations: dict[str, str] | None = None,
    val_check_interval: Any = None,
    device_seconds: dict[str, float] | None = None,
) -> Measurements:
    """Assemble the measurements of one run (see :class:`Measurements` for the fields)."""
    phases = acct.phase_seconds()
    hist = acct.step_times
    return Measurements(
        steps=acct.steps,
        wall_seconds=sum(phases.values()),
        phase_seconds=phases,
        step_median=hist.quantile(0.5),
        step_p90=hist.quantile(0.9),
        step_max=hist.maximum,
        batch_size=batch_size,
        log_calls=acct.log_calls,
        validation_runs=acct.validation_runs,
        checkpoint_saves=checkpoint_saves,
        device=device,
        memory_samples=list(memory_samples or []),
        memory_peak=memory_peak,
        memory_total=memory_total,
        alloc_retries=alloc_retries,
        recompiles=recompiles,
        recompile_seconds=recompile_seconds,
        graphs=graphs,
        deep_window=deep_window,
        ranks=list(ranks or []),
        excluded_seconds=acct.excluded_seconds(),
        excluded_steps=dict(acct.excluded_steps),
        locations=dict(locations or {}),
        val_check_interval=val_check_interval,
        device_seconds=dict(device_seconds or {}),
    )
