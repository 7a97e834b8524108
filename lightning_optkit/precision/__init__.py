"""Mixed precision that decides for the user: the pure core (no Lightning import).

* :mod:`~lightning_optkit.precision.hardware`: facts about the device (plain values).
* :mod:`~lightning_optkit.precision.decision`: facts -> candidates -> choice, the ``Decision`` record.
* :mod:`~lightning_optkit.precision.options`: the option groups ``ScalerConfig``, ``ProbePlan``,
  ``FallbackPolicy`` (frozen, checked once).
* :mod:`~lightning_optkit.precision.controller`: ``PrecisionController``, the decision's life
  cycle (start, rank agreement, probe, fallback) with the rank gather and publishing passed in.
* :mod:`~lightning_optkit.precision.probe`: the measured check's schedule, bookkeeping and clock.
* :mod:`~lightning_optkit.precision.scaler`: ``DynamicGradScaler`` (hysteresis, min/max scale).
* :mod:`~lightning_optkit.precision.ladder`: when fp16 loss scaling has collapsed.
* :mod:`~lightning_optkit.precision.forensics`: which module overflowed.
* :mod:`~lightning_optkit.precision.keep_fp32`: modules run outside autocast.

The Lightning plugin, ``AutoPrecision``, lives in :mod:`lightning_optkit.plugins.auto_precision`;
it is re-exported here lazily, so the pure modules load without Lightning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lightning_optkit.precision.controller import PrecisionController
from lightning_optkit.precision.decision import (
    PRECISIONS,
    Candidate,
    Decision,
    Measurement,
    check_fixed_mode,
    choose_measured,
    decide,
    fallback_target,
    merge_rank_candidates,
    merge_rank_measurements,
    rule_candidates,
)
from lightning_optkit.precision.forensics import (
    OverflowReport,
    OverflowTracer,
    diagnose,
)
from lightning_optkit.precision.hardware import HardwareFacts, probe_hardware
from lightning_optkit.precision.ladder import CollapseDetector
from lightning_optkit.precision.options import FallbackPolicy, ProbePlan, ScalerConfig
from lightning_optkit.precision.probe import ProbeRecorder
from lightning_optkit.precision.scaler import DynamicGradScaler

__all__ = [
    "PRECISIONS",
    "AutoPrecision",
    "Candidate",
    "CollapseDetector",
    "Decision",
    "DynamicGradScaler",
    "FallbackPolicy",
    "HardwareFacts",
    "Measurement",
    "OverflowReport",
    "OverflowTracer",
    "PrecisionController",
    "ProbePlan",
    "ProbeRecorder",
    "ScalerConfig",
    "check_fixed_mode",
    "choose_measured",
    "decide",
    "diagnose",
    "fallback_target",
    "merge_rank_candidates",
    "merge_rank_measurements",
    "probe_hardware",
    "rule_candidates",
]

if TYPE_CHECKING:  # pragma: no cover
    from lightning_optkit.plugins.auto_precision import AutoPrecision


def __getattr__(name: str) -> Any:
    if name == "AutoPrecision":
        from lightning_optkit.plugins.auto_precision import AutoPrecision

        globals()[name] = AutoPrecision
        return AutoPrecision
    raise AttributeError(f"module 'lightning_optkit.precision' has no attribute {name!r}")
