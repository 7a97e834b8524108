"""Glue of the bottleneck report: facts read from the Trainer, summaries, and the files on disk."""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from lightning_optkit import _trainer
from lightning_optkit.callbacks._empty_hooks import is_default
from lightning_optkit import _files as files
from lightning_optkit.profiling import render
from lightning_optkit.profiling.collect import measurements_from, rank_summary
from lightning_optkit.profiling.html import to_html
from lightning_optkit.profiling.measurements import Measurements, RankSummary
from lightning_optkit.profiling.report import build_report
from lightning_optkit.profiling.rules import diagnose
from lightning_optkit.profiling.sampling import allocator_memory, device_info, peak_flops

__all__ = ["share_metrics", "batch_size_of", "device_seconds", "quiet_actions", "phase_locations", "train_loader",
           "throughput_summary", "memory_summary", "write_files", "assemble_report"]


def _source(fn: Any) -> str:
    try:
        return f"{os.path.basename(inspect.getsourcefile(fn) or '?')}:{inspect.getsourcelines(fn)[1]}"
    except (OSError, TypeError):
        return getattr(fn, "__qualname__", "?")


#: LightningModule hooks whose default implementation does nothing.
_MODULE_NO_OPS = (
    "on_train_batch_start", "on_train_batch_end", "on_before_zero_grad", "on_before_backward",
    "on_after_backward", "on_before_optimizer_step", "on_train_epoch_start", "on_train_epoch_end",
    "on_validation_batch_start", "on_validation_batch_end", "on_validation_epoch_start",
    "on_validation_epoch_end", "on_validation_start", "on_validation_end", "on_train_start", "on_train_end",
    "on_fit_start", "on_fit_end", "on_before_batch_transfer", "on_after_batch_transfer",
    "transfer_batch_to_device",
)


def quiet_actions(trainer: pl.Trainer, module: pl.LightningModule, exclude: Any = None) -> frozenset[str]:
    """Action names of hooks that nobody overrode (Lightning still calls and names them every step)."""
    from lightning.pytorch.strategies import Strategy

    names = set()
    base = pl.Callback
    hooks = [h for h in dir(base) if h.startswith("on_") and callable(getattr(base, h))]
    for callback in trainer.callbacks:
        for hook in hooks:
            # the profiler's own hooks cost a few hundred nanoseconds: not worth timing either
            if callback is exclude or is_default(callback, base, hook):
                names.add(f"[Callback]{callback.state_key}.{hook}")
    owner = type(module).__name__
    for hook in _MODULE_NO_OPS:
        if is_default(module, pl.LightningModule, hook):
            names.add(f"[LightningModule]{owner}.{hook}")
    if is_default(module, pl.LightningModule, "optimizer_step"):
        names.add(f"[LightningModule]{owner}.optimizer_step")  # plumbing around the timed optimizer.step
    if is_default(module, pl.LightningModule, "configure_gradient_clipping") and not trainer.gradient_clip_val:
        names.add(f"[LightningModule]{owner}.configure_gradient_clipping")
    strategy = trainer.strategy
    for hook in [h for h in dir(Strategy) if h.startswith("on_") and callable(getattr(Strategy, h))]:
        if is_default(strategy, Strategy, hook):
            names.add(f"[Strategy]{type(strategy).__name__}.{hook}")
    return frozenset(names)


def share_metrics(category_seconds: Sequence[float]) -> dict[str, float]:
    """``bottleneck/<category>`` -> share of the measured time (the excluded category left out)."""
    from lightning_optkit.profiling.phases import CATEGORIES, EXCLUDED_CATEGORY

    pairs = [(c, s) for i, (c, s) in enumerate(zip(CATEGORIES, category_seconds)) if i != EXCLUDED_CATEGORY]
    wall = sum(s for _, s in pairs) or 1.0
    return {f"bottleneck/{c}": s / wall for c, s in pairs}


def batch_size_of(batch: Any) -> int | None:
    """Samples in ``batch``: the first dimension of its first tensor (Lightning's extractor as fallback)."""
    first = batch
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    if isinstance(first, dict) and first:
        first = next(iter(first.values()))
    if isinstance(first, torch.Tensor) and first.ndim > 0:
        return int(first.shape[0])
    try:
        import warnings

        from lightning.pytorch.utilities.data import extract_batch_size

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return int(extract_batch_size(batch))
    except Exception:
        return None


def phase_locations(trainer: pl.Trainer, phases: Sequence[str]) -> dict[str, str]:
    """``file:line`` of the code behind each callback/hook phase, the optimizer and the logging calls."""
    where: dict[str, str] = {}
    objects = [*trainer.callbacks, trainer.lightning_module]
    for phase in phases:
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


def throughput_summary(m: Measurements, batch_size: float | None, flops: int | None,
                       peak: float | None) -> dict[str, Any]:
    """Steps/s, samples/s, FLOPs per step, achieved FLOP/s and utilisation of the peak where known."""
    wall = m.wall_seconds
    summary: dict[str, Any] = {"steps_per_second": m.steps / wall if wall else None, "batch_size": batch_size}
    if batch_size and wall:
        summary["samples_per_second"] = batch_size * m.steps / wall
    if flops and m.step_median:
        summary["flops_per_step"] = float(flops)
        summary["flops_per_second"] = flops / m.step_median
        summary["flop_utilisation"] = flops / m.step_median / peak if peak else None
    return summary


def memory_summary(samples: list[tuple[float, float]], peak: float, alloc: dict[str, int] | None) -> dict[str, Any]:
    """Start, end and peak of the sampled memory in MB (CUDA allocator, else process RSS)."""
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


def write_files(report: dict[str, Any], dirpath: str, filename: str, formats: Sequence[str]) -> list[str]:
    """Write ``<dirpath>/<filename>.<fmt>`` for each format, atomically; returns the paths."""
    renderers = {"json": render.to_json, "md": render.to_markdown, "html": to_html}
    paths = []
    for fmt in formats:
        path = os.path.join(dirpath, f"{filename}.{fmt}")
        files.write_atomic(path, renderers[fmt](report))
        paths.append(path)
    return paths


def device_seconds(timer: Any, accountant: Any) -> dict[str, float]:
    """Forward/backward/optimizer seconds on the device: the device timer's, else the host phase times."""
    if timer is not None:
        timer.poll()  # after the one end-of-fit synchronisation every event is readable
        return {k: v for k, v in timer.totals().items() if v}
    # no separate device clock: the host is the device, its phase times are the device times
    phases = accountant.phase_seconds()
    return {k: phases[k] for k in ("forward", "backward", "optimizer_step") if phases.get(k)}


def assemble_report(trainer: pl.Trainer, accountant: Any, samples: Any, *, status: str, checkpoint_saves: int,
                    gathered: list[RankSummary], deep_window: dict[str, Any] | None, flops: int | None, timer: Any,
                    recompiled_graphs: int) -> dict[str, Any]:
    """Diagnose the fit from what was measured and build the report (see ``profiling.report``).

    Args:
        trainer: The trainer of the fit.
        accountant: Its :class:`~lightning_optkit.profiling.accounting.PhaseAccountant`.
        samples: Its :class:`~lightning_optkit.callbacks._run_samples.RunSamples`.
        status: ``"finished"`` or ``"interrupted: ..."``.
        checkpoint_saves: Checkpoints saved during the fit.
        gathered: The ranks' summaries gathered last (fewer than two: this process's own is used).
        deep_window: Summary of the ``torch.profiler`` window, if one ran.
        flops: FLOPs of one training step, if counted.
        timer: The device timer, or None.
        recompiled_graphs: Graphs compiled during the fit.
    """
    device = trainer.strategy.root_device
    precision = str(getattr(trainer, "precision", "32-true"))
    info = device_info(device, precision, train_loader(trainer))
    alloc = allocator_memory(device)
    if device.type == "cuda" and not status.startswith("interrupted"):
        torch.cuda.synchronize(device)  # once, at the end: every timing event is complete
    own = rank_summary(accountant, trainer.global_rank, samples.peak)
    m = measurements_from(
        accountant, device=info, batch_size=samples.batch_size, checkpoint_saves=checkpoint_saves,
        memory_samples=samples.memory.samples(), memory_peak=samples.peak or None,
        memory_total=float(info.total_memory) if info.total_memory else None,
        alloc_retries=alloc["alloc_retries"] if alloc else None, recompiles=accountant.recompiles,
        recompile_seconds=accountant.recompile_seconds, graphs=recompiled_graphs, deep_window=deep_window,
        ranks=gathered if len(gathered) > 1 else [own], locations=phase_locations(trainer, accountant.phases),
        val_check_interval=trainer.val_check_interval, device_seconds=device_seconds(timer, accountant),
    )
    return build_report(
        m, diagnose(m), decisions=dict(_trainer.run_notes(trainer).decisions),
        throughput=throughput_summary(m, samples.batch_size, flops, peak_flops(device, precision)),
        memory=memory_summary(samples.memory.samples(), samples.peak, alloc),
        timeline=accountant.timeline_per_step(), steps_per_point=accountant.timeline.steps_per_point, status=status,
    )
