"""The report's facts read from the Trainer: device, data loader, code locations; then the pure core builds it."""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from lightning_optkit import _trainer
from lightning_optkit.callbacks.bottleneck_profiler._samples import RunSamples
from lightning_optkit.profiling.accounting import PhaseAccountant
from lightning_optkit.profiling.collect import measurements_from, rank_summary
from lightning_optkit.profiling.measurements import RankSummary
from lightning_optkit.profiling.report import build_report
from lightning_optkit.profiling.rules import diagnose
from lightning_optkit.profiling.sampling import allocator_memory, device_info
from lightning_optkit.profiling.summaries import device_seconds, memory_summary, throughput_summary
from lightning_optkit.profiling.timers import CudaEventTimer, HostTimer

__all__ = ["peak_flops", "phase_locations", "train_loader", "assemble_report"]


def _source(fn: Any) -> str:
    try:
        return f"{os.path.basename(inspect.getsourcefile(fn) or '?')}:{inspect.getsourcelines(fn)[1]}"
    except (OSError, TypeError):
        return getattr(fn, "__qualname__", "?")


def peak_flops(device: torch.device, precision: str) -> float | None:
    """Theoretical peak FLOP/s of ``device`` at ``precision`` where Lightning knows it."""
    if device.type != "cuda":
        return None
    try:
        from lightning.fabric.utilities.throughput import get_available_flops

        dtype = torch.bfloat16 if "bf16" in precision else torch.float16 if "16" in precision else torch.float32
        value = get_available_flops(device, dtype)
        return float(value) if value else None
    except Exception:
        return None


def phase_locations(trainer: pl.Trainer, phases: Sequence[str]) -> dict[str, str]:
    """``file:line`` of the code behind each callback/hook phase, the optimizer and the logging calls."""
    where: dict[str, str] = {}
    objects = [*trainer.callbacks, trainer.lightning_module]
    for phase in phases:
        if phase.startswith("logger:"):
            name = phase.split(":", 1)[1].split(".", 1)[0]
            for logger in trainer.loggers:
                if type(logger).__name__ == name:
                    where[phase] = f"{name}.log_metrics ({_source(inspect.unwrap(type(logger).log_metrics))})"
            continue
        if not phase.startswith(("callback:", "hook:")):
            continue
        owner, hook = phase.split(":", 1)[1].rsplit(".", 1)
        for obj in objects:
            if type(obj).__name__ == owner and hasattr(type(obj), hook):
                where[phase] = _source(getattr(type(obj), hook))
                break
    loader = train_loader(trainer)
    if loader is not None:
        collate = getattr(loader, "collate_fn", None)
        dataset = type(getattr(loader, "dataset", None)).__name__
        where["data_fetch"] = f"DataLoader(dataset={dataset}, num_workers={getattr(loader, 'num_workers', '?')})"
        if collate is not None and getattr(collate, "__module__", "").split(".")[0] not in ("torch", "lightning"):
            where["data_fetch"] += f", collate_fn {getattr(collate, '__name__', 'collate')} ({_source(collate)})"
    module = trainer.lightning_module
    optimizer = type(trainer.optimizers[0]).__name__ if trainer.optimizers else None
    where["optimizer_step"] = f"{optimizer}.step" if optimizer else "LightningModule.optimizer_step"
    where["logging"] = f"{_source(type(module).training_step)} (self.log calls)"
    return where


def train_loader(trainer: pl.Trainer) -> Any:
    """The (first) training DataLoader, or ``None``."""
    loaders = trainer.train_dataloader
    if isinstance(loaders, torch.utils.data.DataLoader):
        return loaders
    flat = getattr(loaders, "flattened", None)
    return flat[0] if flat else None


def assemble_report(trainer: pl.Trainer, accountant: PhaseAccountant, samples: RunSamples, *, status: str,
                    checkpoint_saves: int, gathered: list[RankSummary], deep_window: dict[str, Any] | None,
                    flops: int | None, timer: HostTimer | CudaEventTimer | None,
                    recompiled_graphs: int, notes: list[str] | None = None,
                    hook_locations: dict[str, str] | None = None) -> dict[str, Any]:
    """Read the Trainer's facts, then diagnose the fit and build the report with the pure core.

    Args:
        trainer: The trainer of the fit.
        accountant: Its :class:`~lightning_optkit.profiling.accounting.PhaseAccountant`.
        samples: Its memory and batch-size samples.
        status: ``"finished"`` or ``"interrupted: ..."``.
        checkpoint_saves: Checkpoints saved during the fit.
        gathered: The ranks' summaries gathered last (fewer than two: this process's own is used).
        deep_window: Summary of the ``torch.profiler`` window, if one ran.
        flops: FLOPs of one training step, if counted.
        timer: The device timer, or None.
        recompiled_graphs: Graphs compiled during the fit.
        hook_locations: ``file:line`` of the timed forward hooks, by phase.
        notes: What the profiler changed in the run it measured (see ``skipped_hooks_notes``).
    """
    device = trainer.strategy.root_device
    precision = str(getattr(trainer, "precision", "32-true"))
    info = device_info(device, precision, train_loader(trainer))
    alloc = allocator_memory(device)
    if device.type == "cuda" and not status.startswith("interrupted"):
        torch.cuda.synchronize(device)  # once, at the end: every timing event is complete
    if timer is not None:
        timer.poll()  # after the one end-of-fit synchronisation every event is readable
    own = rank_summary(accountant, trainer.global_rank, samples.peak)
    m = measurements_from(
        accountant, device=info, batch_size=samples.batch_size, checkpoint_saves=checkpoint_saves,
        memory_samples=samples.memory.samples(), memory_peak=samples.peak or None,
        memory_total=float(info.total_memory) if info.total_memory else None,
        alloc_retries=alloc["alloc_retries"] if alloc else None, recompiles=accountant.recompiles,
        recompile_seconds=accountant.recompile_seconds, graphs=recompiled_graphs, deep_window=deep_window,
        ranks=gathered if len(gathered) > 1 else [own], locations={**phase_locations(trainer, accountant.phases), **(hook_locations or {})},
        val_check_interval=trainer.val_check_interval,
        device_seconds=device_seconds(timer.totals() if timer is not None else None, accountant.phase_seconds()),
    )
    return build_report(
        m, diagnose(m), decisions=dict(_trainer.run_notes(trainer).decisions),
        throughput=throughput_summary(m, samples.batch_size, flops, peak_flops(device, precision)),
        memory=memory_summary(samples.memory.samples(), samples.peak, alloc),
        timeline=accountant.timeline_per_step(), steps_per_point=accountant.timeline.steps_per_point, status=status,
        notes=notes,
    )
