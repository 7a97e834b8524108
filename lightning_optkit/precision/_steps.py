"""Per-step glue of ``AutoPrecision``: the scaled step, calibration, probe bookkeeping, the
fallback/forensics monitor, interval logging and publishing the decision.

Kept apart from ``plugin.py`` so the plugin class reads as the list of Lightning hooks it
implements; every function here takes the plugin and the Trainer explicitly.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import torch
from lightning.fabric.plugins.precision.amp import _optimizer_handles_unscaling
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn

from lightning_optkit._trainer import record_decision
from lightning_optkit.precision.decision import (
    SIGNIFICAND_BITS,
    Decision,
    choose_measured,
    fallback_target,
    merge_rank_measurements,
)
from lightning_optkit.precision.forensics import OverflowTracer
from lightning_optkit.precision.probe import ProbeRecorder

if TYPE_CHECKING:  # pragma: no cover
    from lightning_optkit.precision.plugin import AutoPrecision

__all__ = [
    "after_step",
    "calibrate",
    "fall_back",
    "finish_probe",
    "gather_rows",
    "log_interval",
    "monitor",
    "probe_enter",
    "publish",
    "scaled_step",
    "world_size",
]

_MAX_CALIBRATION_RERUNS = 8
_FORENSICS_COOLDOWN = 100
_MAX_REPORTS = 20


def world_size(trainer: Any) -> int:
    """Number of processes of the run (1 without a distributed strategy)."""
    return int(getattr(trainer, "world_size", 1) or 1)


def gather_rows(trainer: Any, row: list[float]) -> list[list[float]]:
    """Every rank's ``row`` (same length on all ranks), through the strategy's ``all_gather``."""
    tensor = torch.tensor(row, dtype=torch.float64, device=trainer.strategy.root_device)
    out = trainer.strategy.all_gather(tensor)
    return [out.tolist()] if out.dim() == 1 else out.tolist()


def publish(trainer: Any, decision: Decision, verbose: bool = True) -> None:
    """Print (rank zero), record on the Trainer and log the decision as hyperparameters."""
    if verbose:
        rank_zero_info(decision.summary())
    record_decision(trainer, "precision", decision.record())
    for logger in getattr(trainer, "loggers", None) or []:
        logger.log_hyperparams(decision.hparams())


def _sync(device_type: str) -> None:
    module = getattr(torch, device_type, None)
    if device_type != "cpu" and module is not None and hasattr(module, "synchronize"):
        module.synchronize()


def scaled_step(plugin: AutoPrecision, optimizer: Any, model: Any, closure: Any, **kwargs: Any) -> Any:
    """closure -> unscale_ -> on_before_optimizer_step + clipping -> scaler.step -> scaler.update."""
    scaler = plugin.scaler
    assert scaler is not None
    result = closure()
    if plugin._calibrate_pending:
        result = calibrate(plugin, optimizer, model, closure, result)
    tracer = plugin._tracer
    if tracer is not None and tracer.armed:
        _collect_forensics(plugin, model)
    # backward was skipped in automatic optimization (training_step returned None): nothing to step
    skip = result is None and model.automatic_optimization
    if not skip and not _optimizer_handles_unscaling(optimizer) and not scaler.is_unscaled(optimizer):
        scaler.unscale_(optimizer)  # hooks and clipping see true gradients
    plugin._after_closure(model, optimizer)
    if skip:
        return result
    plugin._fused_step = _optimizer_handles_unscaling(optimizer)
    output = scaler.step(optimizer, **kwargs)  # skipped (or skipped in the fused kernel) on inf/nan
    scaler.update()
    return output


def calibrate(plugin: AutoPrecision, optimizer: Any, model: Any, closure: Any, result: Any) -> Any:
    """Lower the scale (by ``backoff_factor**4`` per try) and redo the first batch until finite."""
    plugin._calibrate_pending = False
    scaler = plugin.scaler
    assert scaler is not None
    start, reruns = scaler.get_scale(), 0
    while result is not None and model.automatic_optimization:
        if not bool(torch.isfinite(result).all()):
            break  # the loss itself is not finite: not a scaling problem
        scaler.unscale_(optimizer)
        if not bool(scaler.found_inf(optimizer)):
            break
        scale = scaler.get_scale()
        if scale <= scaler.min_scale or reruns >= _MAX_CALIBRATION_RERUNS:
            break
        scaler.forget(optimizer)
        scaler.set_scale(scale * scaler.get_backoff_factor() ** 4)
        result = closure()
        reruns += 1
    end = scaler.get_scale()
    plugin.calibration = {"initial_scale": start, "scale": end, "reruns": reruns}
    if plugin.decision is not None:
        plugin.decision.reasons.append(
            f"loss scale calibrated on the first batch: {start:g} -> {end:g} ({reruns} re-runs)")
    return result


def _collect_forensics(plugin: AutoPrecision, model: Any) -> None:
    tracer = plugin._tracer
    assert tracer is not None
    trainer = getattr(model, "trainer", None)
    report = tracer.collect(model.named_parameters(), step=getattr(trainer, "global_step", -1))
    if report is not None:
        if len(plugin.overflow_reports) < _MAX_REPORTS:
            plugin.overflow_reports.append(report.to_dict())
        rank_zero_warn(f"AutoPrecision forensics: {report.message()}")
        tracer.disarm()
        plugin._forensics_cooldown = _FORENSICS_COOLDOWN
    elif tracer.exhausted:
        tracer.disarm()


def after_step(plugin: AutoPrecision, trainer: Any, loss: Any) -> None:
    """Probe bookkeeping, the fallback/forensics monitor and interval logging."""
    if plugin._probe is not None:
        _probe_record(plugin, trainer, loss)
    if plugin.scaler is not None and (plugin.fallback or plugin.forensics) and _monitor_due(plugin, trainer):
        monitor(plugin, trainer)
    log_interval(plugin, trainer)


def _monitor_due(plugin: AutoPrecision, trainer: Any) -> bool:
    """Every step where reading costs nothing: on CPU, or when ``GradScaler.step`` already
    synchronised (non-fused optimizers read ``found_inf`` on the host); with a fused optimizer on
    an accelerator only every ``log_every_n_steps`` steps, so fp16 training keeps no per-step sync."""
    if plugin.device_type == "cpu" or not plugin._fused_step:
        return True
    every = max(1, int(getattr(trainer, "log_every_n_steps", 1) or 1))
    return (int(trainer.global_step) + 1) % every == 0


def probe_enter(plugin: AutoPrecision) -> None:
    """Mark the start of a probe step (the device is drained first, so the step pays only for itself)."""
    _sync(plugin.device_type)
    plugin._step_start = time.perf_counter()


def _probe_record(plugin: AutoPrecision, trainer: Any, loss: Any) -> None:
    probe = plugin._probe
    assert probe is not None
    _sync(plugin.device_type)
    now = time.perf_counter()
    if getattr(trainer, "accumulate_grad_batches", 1) == 1 and plugin._step_start is not None:
        # forward + backward + optimizer step: validation or checkpointing between steps is not counted
        interval: float | None = now - plugin._step_start
    else:  # the micro-batches of the window ran before this call: time from the previous step's end
        interval = None if plugin._last_exit is None else now - plugin._last_exit
    plugin._step_start = None
    finite = loss is None or bool(torch.isfinite(loss).all())
    scaler = plugin.scaler
    skipped = scaler is not None and scaler.stats()["consecutive_skips"] > 0
    probe.record(interval, finite, skipped)
    upcoming = probe.current()
    if upcoming is None:
        finish_probe(plugin, trainer, collective=True)
    else:
        plugin._activate(upcoming)
    plugin._last_exit = time.perf_counter()


def finish_probe(plugin: AutoPrecision, trainer: Any, collective: bool = True) -> None:
    """Choose from the probe's measurements (all ranks agree), switch, publish."""
    probe, plugin._probe = plugin._probe, None
    decision = plugin.decision
    assert probe is not None and decision is not None
    names = list(probe.plan.candidates)
    measured = probe.measurements()
    world = world_size(trainer)
    if world > 1 and collective:
        rows = gather_rows(trainer, ProbeRecorder.encode(measured, names))
        measured = merge_rank_measurements([ProbeRecorder.decode(r, names) for r in rows])
    if world > 1 and not collective:
        precision, reasons = plugin.precision, ["probe cut short by the end of the run"]
    else:
        precision, reasons = choose_measured(names, measured, plugin.probe_margin)
        reasons = [*probe.rejected.values(), *reasons]
        if probe.index < probe.total_steps:
            reasons.insert(0, f"probe cut short after {probe.index} of {probe.total_steps} steps")
    decision.precision, decision.source = precision, "probe"
    decision.measurements = {
        name: {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(m).items()
               if k != "precision"}
        for name, m in measured.items()
    }
    decision.reasons.extend(reasons)
    plugin._phase_done = True  # the phase ends when the next batch arrives (after this batch's hooks)
    plugin._activate(precision)
    publish(trainer, decision, verbose=plugin.verbose)


def monitor(plugin: AutoPrecision, trainer: Any) -> None:
    """Read the scaler's counters (lagging one step on accelerators) to arm forensics or fall back."""
    scaler = plugin.scaler
    assert scaler is not None
    if plugin.device_type == "cpu":
        stats = scaler.stats()
    else:
        # Read the previous step's snapshot: its kernels ran before this step's were queued, so
        # the read waits for them while the device still has this step's work.
        snapshot = scaler.stats_tensor()
        previous, plugin._lag_snapshot = plugin._lag_snapshot, snapshot
        if previous is None:
            return
        stats = scaler.stats_from_tensor(previous)
    if plugin.forensics:
        if plugin._tracer is None:
            plugin._tracer = OverflowTracer(trainer.lightning_module)
        plugin._forensics_cooldown = max(0, plugin._forensics_cooldown - 1)
        if (stats["skipped_steps"] > plugin._seen_skips and not plugin._tracer.armed
                and plugin._forensics_cooldown == 0):
            plugin._tracer.arm()
        plugin._seen_skips = stats["skipped_steps"]
    if plugin.fallback:
        reason = plugin.policy.check(stats)
        if reason is not None:
            fall_back(plugin, trainer, reason)


def fall_back(plugin: AutoPrecision, trainer: Any, reason: str) -> None:
    """Leave fp16 for the next rung of the ladder, on every rank at the same step."""
    assert plugin.facts is not None and plugin.decision is not None
    target = fallback_target(plugin.precision, plugin.facts)
    if world_size(trainer) > 1:
        rows = gather_rows(trainer, [1.0 if target == "bf16-mixed" else 0.0])
        if min(r[0] for r in rows) < 0.5:
            target = "32-true"
    step = int(trainer.global_step)
    rank_zero_warn(f"AutoPrecision: fp16 loss scaling collapsed ({reason}); switching "
                   f"{plugin.precision} -> {target} after step {step}. The switch is saved in checkpoints.")
    plugin.decision.fallbacks.append({"step": step, "from": plugin.precision, "to": target, "reason": reason})
    plugin.decision.precision, plugin.decision.source = target, "fallback"
    if plugin._tracer is not None:
        plugin._tracer.disarm()
    plugin._activate(target)
    record_decision(trainer, "precision", plugin.decision.record())
    for logger in getattr(trainer, "loggers", None) or []:
        logger.log_hyperparams(plugin.decision.hparams())


def log_interval(plugin: AutoPrecision, trainer: Any) -> None:
    """Log ``amp/loss_scale``, ``amp/skipped_steps`` and ``amp/precision`` every
    ``trainer.log_every_n_steps`` steps (the only place that reads the counters on a schedule)."""
    every = getattr(trainer, "log_every_n_steps", 0)
    loggers = getattr(trainer, "loggers", None)
    if not every or not loggers:
        return
    step = int(trainer.global_step) + 1  # this step, counted from 1 (global_step grows after it)
    if step % every:
        return
    scaler = plugin.scaler
    metrics = {
        "amp/loss_scale": scaler.get_scale() if scaler is not None else 1.0,
        "amp/skipped_steps": float(plugin.skipped_steps),
        "amp/precision": float(SIGNIFICAND_BITS[plugin.precision]),
    }
    for logger in loggers:
        logger.log_metrics(metrics, step=step - 1)
