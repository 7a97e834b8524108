"""Diagnosis rules: measurements in, findings out.

Every rule is a plain function of :class:`Measurements`. A rule fires only when a *measured* share
backs it: a static setting (``num_workers=0``, fp32 on a tensor-core GPU) is evidence attached to
a measured cost, never a finding by itself. ``share`` is the part of the wall time the cause costs
(an upper bound on what fixing it saves); for the memory codes it is the part of the memory.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any, Literal

from lightning_optkit.profiling.findings import (
    SEVERITY_RANK,
    THRESHOLDS,
    Finding,
    Severity,
    Thresholds,
    rank_findings,
    severity_for,
)
from lightning_optkit.profiling.measurements import Measurements
from lightning_optkit.profiling.phases import CATEGORIES

__all__ = ["Finding", "Thresholds", "THRESHOLDS", "RULES", "diagnose", "rank_findings", "severity_for", "SEVERITY_RANK"]

def _make(code: str, share: float, evidence: dict[str, Any], where: str, rec: str,
          share_of: Literal["time", "memory"] = "time", cap: Severity | None = None) -> Finding | None:
    severity = severity_for(code, share)
    if severity is None:
        return None
    if cap is not None and SEVERITY_RANK[severity] > SEVERITY_RANK[cap]:
        severity = cap
    return Finding(code, severity, float(share), evidence, where, rec, share_of)


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)


def rule_dataloader(m: Measurements) -> Finding | None:
    share = m.share("data_fetch")
    workers = m.device.num_workers
    if workers == 0:
        rec = ("Data loading blocks the training loop: set DataLoader(num_workers=N, persistent_workers=True) "
               "in your LightningDataModule, N up to the CPU cores per rank.")
    else:
        rec = ("The workers cannot keep up: make __getitem__/collate_fn cheaper (pre-compute or cache "
               "decoded samples, move augmentation to the GPU in on_after_batch_transfer), or add workers.")
    evidence = {"ms_per_step": round(m.per_step_ms("data_fetch"), 3), "num_workers": workers}
    where = m.locations.get("data_fetch", "train_dataloader (DataLoader __next__)")
    return _make("dataloader", share, evidence, where, rec)


def rule_host_to_device(m: Measurements) -> Finding | None:
    share = m.share("host_to_device")
    rec = ("Copying batches to the device stalls the loop: use DataLoader(pin_memory=True) so "
           "Lightning's batch_to_device copies asynchronously, keep batches compact (uint8 images, "
           "convert on the device in on_after_batch_transfer).")
    evidence = {"ms_per_step": round(m.per_step_ms("host_to_device"), 3), "pin_memory": m.device.pin_memory,
                "device": m.device.type}
    cap: Severity | None = None if m.device.type == "cuda" else "low"
    return _make("host_to_device", share, evidence, "Strategy.batch_to_device / transfer_batch_to_device", rec,
                 cap=cap)


def rule_host_sync(m: Measurements) -> Finding | None:
    window = m.deep_window
    if not window or not window.get("sync_calls"):
        return None
    sites = window.get("sync_sites") or []
    where = sites[0]["where"] if sites else "unknown"
    evidence = {"sync_calls_per_step": round(window["sync_calls_per_step"], 2), "sync_ms": window.get("sync_ms"),
                "window_steps": window.get("steps"), "device": m.device.type}
    rec = ("Calls such as .item(), .tolist(), .cpu() or `if tensor:` make the host wait for the device "
           "every step: keep values as tensors (self.log accepts tensors), read them every N steps.")
    if m.device.type == "cuda":
        steps = max(int(window.get("steps", 1)), 1)
        per_step = (window.get("sync_ms") or 0.0) / 1e3 / steps
        share = per_step / m.step_median if m.step_median > 0 else 0.0
        return _make("host_sync", share, evidence, where, rec)
    # off-GPU a sync costs almost nothing: report the count as a low finding, never more
    if window["sync_calls_per_step"] >= 1:
        return Finding("host_sync", "low", 0.0, evidence, where,
                       rec + " (On CPU they cost little; on a GPU each one stalls the pipeline.)")
    return None


#: A median step shorter than this is "small": per-step fixed costs (loop, hooks, launches) weigh a lot.
SMALL_STEP_SECONDS = 0.005
_COMPUTE_PHASES = ("forward", "backward")
_INPUT_PHASES = ("data_fetch", "host_to_device", "validation", "checkpoint")


def rule_small_steps(m: Measurements) -> Finding | None:
    if m.step_median <= 0 or m.step_median >= SMALL_STEP_SECONDS:
        return None
    compute = m.share(*_COMPUTE_PHASES)
    # time that user code (a logger backend, a hook, a callback) spends is named by its own rule
    named = m.share(*(p for p in m.phase_seconds if p.startswith(("logger:", "hook:", "callback:"))))
    fixed = 1.0 - compute - m.share(*_INPUT_PHASES) - named
    if fixed < compute:
        return None
    evidence = {"fixed_overhead_share": round(fixed, 3), "compute_share": round(compute, 3),
                "step_median_ms": _ms(m.step_median), "batch_size": m.batch_size}
    rec = ("Each step is so short that fixed per-step costs (Lightning's loop and hooks, self.log, the "
           "optimizer step, kernel launches) outweigh the compute: raise the batch size (scale the learning "
           "rate), or on GPU use torch.compile / CUDA graphs.")
    return _make("small_steps", fixed, evidence, "training loop (per-step overhead)", rec)


def rule_no_mixed_precision(m: Measurements) -> Finding | None:
    d = m.device
    if d.type != "cuda" or d.capability is None or d.capability < (7, 0):
        return None
    if "16" in d.precision or "8" in d.precision:
        return None
    compute = m.share("forward", "backward")
    if m.device_seconds and m.wall_seconds > 0:  # the GPU's own time, when CUDA events measured it
        compute = min(1.0, (m.device_seconds.get("forward", 0.0) + m.device_seconds.get("backward", 0.0))
                      / m.wall_seconds)
    share = compute / 2  # tensor cores at least halve matmul time: half the fp32 compute is the bound
    rec = ("The GPU has tensor cores but the run computes in fp32: use Trainer(precision='bf16-mixed') "
           "(or '16-mixed' before Ampere), or the AutoPrecision plugin.")
    evidence = {"compute_share": round(compute, 3), "precision": d.precision, "capability": list(d.capability)}
    return _make("no_mixed_precision", share, evidence, f"Trainer(precision={d.precision!r})", rec)


def rule_optimizer(m: Measurements) -> Finding | None:
    share = m.share("optimizer_step", "zero_grad")
    rec = ("The optimizer step is expensive for this model: use a foreach/fused implementation "
           "(torch.optim.AdamW(..., fused=True) on CUDA), fewer parameter groups, or step less often "
           "with Trainer(accumulate_grad_batches=N).")
    evidence = {"ms_per_step": round(m.per_step_ms("optimizer_step", "zero_grad"), 3),
                "forward_backward_ms_per_step": round(m.per_step_ms("forward", "backward"), 3)}
    where = m.locations.get("optimizer_step", "LightningModule.optimizer_step")
    return _make("optimizer", share, evidence, where, rec)


def _by_owner(m: Measurements) -> dict[str, tuple[float, str]]:
    owners: dict[str, tuple[float, str, float]] = {}
    for phase, seconds in m.phase_seconds.items():
        if not phase.startswith(("callback:", "hook:")):
            continue
        owner = phase.split(":", 1)[1].rsplit(".", 1)[0]
        total, top, top_seconds = owners.get(owner, (0.0, phase, 0.0))
        if seconds > top_seconds:
            top, top_seconds = phase, seconds
        owners[owner] = (total + seconds, top, top_seconds)
    return {owner: (v[0], v[1]) for owner, v in owners.items()}


def rule_callback(m: Measurements) -> list[Finding]:
    findings = []
    for owner, (seconds, top) in _by_owner(m).items():
        share = seconds / m.wall_seconds if m.wall_seconds > 0 else 0.0
        kind, name = top.split(":", 1)
        label = ("callback " if kind == "callback" else "LightningModule hook ") + name
        rec = (f"{name} runs every step: do its work every N steps (check batch_idx or trainer.global_step), "
               "move heavy work to on_train_epoch_end or a background thread, avoid .item()/.cpu() in it.")
        if kind == "hook" and name.endswith(("forward_hook", "forward_pre_hook")):
            module, hook = name.rsplit(".", 1)
            label = f"{hook.replace('_', ' ')} on submodule {module}"
            rec = (f"A {hook.replace('_', ' ')} registered on {module} runs in every forward pass: remove it for "
                   "training (keep the handle of register_forward_hook and call handle.remove()), run its work "
                   "every N steps, or keep it on the device (no .item()/.cpu()/printing in it).")
        where = label + (f" ({m.locations[top]})" if top in m.locations else "")
        evidence = {"ms_per_step": round(1e3 * seconds / max(m.steps, 1), 3), "hook_ms_per_step":
                    round(m.per_step_ms(top), 3)}
        finding = _make("callback", share, evidence, where, rec)
        if finding is not None:
            findings.append(finding)
    return findings


def rule_logging(m: Measurements) -> Finding | None:
    backends = m.prefixed("logger:")
    calls_seconds = m.phase_seconds.get("logging", 0.0)
    share = m.share("logging", *backends)
    calls = m.log_calls / max(m.steps, 1)
    evidence: dict[str, Any] = {"calls_per_step": round(calls, 2),
                                "us_per_call": round(1e6 * calls_seconds / max(m.log_calls, 1), 2)}
    top = max(backends, key=backends.__getitem__, default=None)
    if top is not None and backends[top] > calls_seconds:  # the logger backend costs more than self.log
        name = top.split(":", 1)[1]
        evidence.update({"backend": name, "backend_ms_per_step": round(m.per_step_ms(top), 3),
                         "self_log_ms_per_step": round(m.per_step_ms("logging"), 3)})
        rec = (f"The logger backend ({name}) is slow: write metrics less often (Trainer(log_every_n_steps=N)), "
               "buffer or send them from a background thread (most trackers have an offline or async mode), or "
               "log per epoch.")
        return _make("logging", share, evidence, m.locations.get(top, name), rec)
    rec = ("self.log is called often enough to cost real time: log fewer values per step (one self.log_dict), "
           "log per epoch (on_step=False), avoid sync_dist=True on every step, log torchmetrics objects "
           "instead of computing values each step.")
    return _make("logging", share, evidence, m.locations.get("logging", "LightningModule.log calls"), rec)


def rule_validation(m: Measurements) -> Finding | None:
    share = m.share("validation")
    runs = max(m.validation_runs, 1)
    evidence = {"runs": m.validation_runs, "seconds_per_run": round(m.phase_seconds.get("validation", 0.0) / runs, 4),
                "val_check_interval": m.val_check_interval}
    rec = ("Validation takes a large part of the run: validate less often (Trainer(val_check_interval=..., "
           "check_val_every_n_epoch=...)) or on fewer batches (limit_val_batches).")
    return _make("validation", share, evidence, "validation loop", rec)


def rule_checkpoint(m: Measurements) -> Finding | None:
    share = m.share("checkpoint")
    saves = max(m.checkpoint_saves, 1)
    evidence = {"saves": m.checkpoint_saves, "seconds_per_save": round(m.phase_seconds.get("checkpoint", 0.0) / saves, 4)}
    rec = ("Checkpointing stalls training: save less often (ModelCheckpoint(every_n_train_steps=..., "
           "save_top_k=1)), save_weights_only=True, or write asynchronously (AsyncCheckpointIO plugin).")
    return _make("checkpoint", share, evidence, m.locations.get("checkpoint", "ModelCheckpoint"), rec)


_WAIT_CATEGORIES = {"backward", "optimizer_step", "excluded", "other"}


def rule_rank_imbalance(m: Measurements) -> Finding | None:
    ranks = [r for r in m.ranks if r.steps > 0 and r.category_seconds]
    if len(ranks) < 2:
        return None
    wall = statistics.median(r.wall_seconds for r in ranks)
    if wall <= 0:
        return None
    best: tuple[float, int, int] | None = None
    for c, name in enumerate(CATEGORIES):
        if name in _WAIT_CATEGORIES:
            continue
        values = [r.category_seconds[c] for r in ranks]
        low = min(values)
        for r, value in zip(ranks, values):
            excess = value - low
            if best is None or excess > best[0]:
                best = (excess, r.rank, c)
    if best is None:
        return None
    excess, rank, c = best
    share = excess / wall
    slow = next(r for r in ranks if r.rank == rank)
    cause = CATEGORIES[c]
    detail = next((name for name, _ in slow.top_phases if _category_name(name) == cause), cause)
    evidence = {"slow_rank": rank, "cause": cause, "phase": detail,
                "excess_ms_per_step": round(1e3 * excess / max(slow.steps, 1), 3),
                "step_median_ms_by_rank": {str(r.rank): _ms(r.step_median) for r in ranks}}
    rec = (f"Rank {rank} is slower in {detail}; every other rank waits for it at each gradient all-reduce. "
           "Balance the work (DistributedSampler shards of equal cost, rank-independent callbacks/logging, "
           "no rank-zero-only work inside the step).")
    return _make("rank_imbalance", share, evidence, f"rank {rank}: {detail}", rec)


def _category_name(phase: str) -> str:
    from lightning_optkit.profiling.phases import category_of

    return CATEGORIES[category_of(phase)]


def rule_recompilation(m: Measurements) -> Finding | None:
    if m.recompiles <= 0:
        return None
    cost = max(m.recompile_seconds - m.recompiles * m.step_median, 0.0)
    total = m.wall_seconds
    share = cost / total if total > 0 else 0.0
    evidence = {"recompiles": m.recompiles, "graphs": m.graphs, "seconds": round(cost, 3)}
    rec = ("torch.compile recompiles during training (changing shapes or Python values): pad inputs to a few "
           "fixed shapes, mark dynamic dimensions (torch._dynamo.mark_dynamic / torch.compile(dynamic=True)), "
           "and check TORCH_LOGS=recompiles for the guard that fails.")
    return _make("recompilation", share, evidence, "torch.compile'd module", rec)


def rule_memory_pressure(m: Measurements) -> Finding | None:
    if not m.memory_peak or not m.memory_total:
        return None
    share = m.memory_peak / m.memory_total
    evidence = {"peak_mb": round(m.memory_peak / 2**20, 1), "total_mb": round(m.memory_total / 2**20, 1),
                "alloc_retries": m.alloc_retries}
    rec = ("Memory is nearly full: the allocator retries and fragments. Use mixed precision, activation "
           "checkpointing, a smaller batch with accumulate_grad_batches, or set "
           "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True.")
    finding = _make("memory_pressure", share, evidence, f"{m.device.type} memory", rec, share_of="memory")
    if finding is not None and m.alloc_retries:
        finding.severity = "high"
    return finding


def rule_memory_growth(m: Measurements) -> Finding | None:
    samples = m.memory_samples
    if len(samples) < 4:
        return None
    tail = samples[len(samples) // 4:]  # skip the warm-up quarter
    start, end = tail[0][1], tail[-1][1]
    growth = end - start
    if growth <= 0 or end <= 0:
        return None
    rises = sum(1 for a, b in zip(tail, tail[1:]) if b[1] > a[1])
    if rises < 0.6 * (len(tail) - 1):
        return None
    steps = max(tail[-1][0] - tail[0][0], 1)
    share = growth / end
    evidence = {"growth_mb": round(growth / 2**20, 1), "mb_per_100_steps": round(100 * growth / steps / 2**20, 2),
                "end_mb": round(end / 2**20, 1)}
    rec = ("Memory keeps growing step after step: something keeps references to tensors (appending losses or "
           "outputs with their graph to a list, a cache without bound). Store loss.detach() or .item() "
           "every N steps, clear lists at epoch end.")
    return _make("memory_growth", share, evidence, "training step / callbacks keeping tensors", rec,
                 share_of="memory")


Rule = Callable[[Measurements], "Finding | list[Finding] | None"]

#: Every rule, in a stable order (the registry the tests iterate over).
RULES: dict[str, Rule] = {
    "dataloader": rule_dataloader,
    "host_to_device": rule_host_to_device,
    "host_sync": rule_host_sync,
    "small_steps": rule_small_steps,
    "no_mixed_precision": rule_no_mixed_precision,
    "optimizer": rule_optimizer,
    "callback": rule_callback,
    "logging": rule_logging,
    "validation": rule_validation,
    "checkpoint": rule_checkpoint,
    "rank_imbalance": rule_rank_imbalance,
    "recompilation": rule_recompilation,
    "memory_pressure": rule_memory_pressure,
    "memory_growth": rule_memory_growth,
}


def diagnose(m: Measurements) -> list[Finding]:
    """Run every rule; findings in the order of :func:`rank_findings`."""
    findings: list[Finding] = []
    for rule in RULES.values():
        result = rule(m)
        if isinstance(result, list):
            findings.extend(result)
        elif result is not None:
            findings.append(result)
    return rank_findings(findings)
