"""lightning_optkit: Lightning callbacks and plugins that make training faster and safer.

The public components are imported lazily, so ``import lightning_optkit`` stays cheap and an
optional dependency of one component never blocks the others.

Components:
    WarmupDecay: warm-up + decay learning-rate schedules as a Trainer callback.
    AutoOptimizer: picks the optimizer, its parameter groups and learning rate.
    AutoPrecision: a precision plugin choosing bf16 / fp16 / fp32 for the hardware.
    BottleneckProfiler: step-phase timing that names what holds training back.
    OptKit: the four together in one callback.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "WarmupDecay": "lightning_optkit.callbacks.warmup_decay",
    "AutoOptimizer": "lightning_optkit.callbacks.auto_optimizer",
    "AutoPrecision": "lightning_optkit.plugins.auto_precision",
    "BottleneckProfiler": "lightning_optkit.callbacks.bottleneck_profiler",
    "OptKit": "lightning_optkit.callbacks.optkit",
    "build_schedule": "lightning_optkit.schedules",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from lightning_optkit.callbacks.auto_optimizer import AutoOptimizer
    from lightning_optkit.callbacks.bottleneck_profiler import BottleneckProfiler
    from lightning_optkit.callbacks.optkit import OptKit
    from lightning_optkit.callbacks.warmup_decay import WarmupDecay
    from lightning_optkit.plugins.auto_precision import AutoPrecision
    from lightning_optkit.schedules import build_schedule


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lightning_optkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
