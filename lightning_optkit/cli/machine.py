"""What the toolkit would choose on this machine, without a training run (``precision`` command).

A small reference MLP is timed a few steps in each plausible precision (the same measured check
AutoPrecision runs inside fit), and each optimizer kernel (for-loop, foreach, fused) is timed on its
parameters, as AutoOptimizer does on the real model.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch import nn

from lightning_optkit.optim.runner import measure_kernels
from lightning_optkit.precision.decision import Decision, Measurement, decide, rule_candidates
from lightning_optkit.precision.hardware import probe_hardware

__all__ = ["precision_report", "time_precision", "kernel_report"]

_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def _mlp(width: int, device: torch.device) -> nn.Module:
    return nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
                         nn.Linear(width, 10)).to(device)


def time_precision(
    precision: str, *, width: int, batch: int, steps: int, device: torch.device
) -> Measurement:
    """Median step time (forward, backward, AdamW step) of the reference MLP in ``precision``."""
    torch.manual_seed(0)
    model = _mlp(width, device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, width, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    dtype = _DTYPES.get(precision)
    times, finite = [], True
    for i in range(steps + 2):
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        finite = finite and bool(torch.isfinite(loss))
        if i >= 2:  # the first steps warm up kernels and caches
            times.append((time.perf_counter() - start) * 1e3)
    return Measurement(precision, statistics.median(times), len(times), finite)


def precision_report(*, device: str = "cpu", measure: bool = True, width: int = 512, batch: int = 64,
                     steps: int = 10) -> Decision:
    """The decision AutoPrecision(mode="auto") would make here for the reference MLP."""
    facts = probe_hardware(device)
    names = [c.precision for c in rule_candidates(facts)]
    measurements: dict[str, Measurement] = {}
    if measure and len(names) > 1:
        dev = torch.device(device)
        for _ in range(2):  # two interleaved rounds; keep each precision's faster one
            for name in names:
                m = time_precision(name, width=width, batch=batch, steps=steps, device=dev)
                old = measurements.get(name)
                measurements[name] = m if old is None or m.median_ms < old.median_ms else old
    return decide(facts, "auto", measurements=measurements or None)


def kernel_report(*, width: int = 512, device: str = "cpu",
                  optimizers: tuple[str, ...] = ("adamw", "sgd")) -> dict[str, dict[str, Any]]:
    """Seconds per ``optimizer.step()`` of each kernel, and the fastest, for each optimizer."""
    params = list(_mlp(width, torch.device(device)).parameters())
    out: dict[str, dict[str, Any]] = {}
    for name in optimizers:
        times = measure_kernels(params, name, lr=1e-3)
        out[name] = {"seconds": times, "fastest": min(times, key=times.get) if times else None}
    return out
