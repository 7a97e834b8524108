"""Mixed precision that decides for the user: pure decision rules, a loss scaler and a plugin.

* :mod:`~lightning_optkit.precision.hardware`: facts about the device (plain values).
* :mod:`~lightning_optkit.precision.decision`: facts -> candidates -> choice, the ``Decision`` record.
* :mod:`~lightning_optkit.precision.probe`: the measured check's schedule and bookkeeping.
* :mod:`~lightning_optkit.precision.scaler`: ``DynamicGradScaler`` (hysteresis, min/max scale).
* :mod:`~lightning_optkit.precision.ladder`: when fp16 loss scaling has collapsed.
* :mod:`~lightning_optkit.precision.forensics`: which module overflowed.
* :mod:`~lightning_optkit.precision.keep_fp32`: modules run outside autocast.
* :mod:`~lightning_optkit.precision.plugin`: ``AutoPrecision``, the Lightning plugin (glue).

``AutoPrecision`` is imported lazily, so the pure modules load without Lightning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from lightning_optkit.precision.ladder import FallbackPolicy
from lightning_optkit.precision.probe import ProbePlan, ProbeRecorder
from lightning_optkit.precision.scaler import DynamicGradScaler

__all__ = [
    "PRECISIONS",
    "AutoPrecision",
    "Candidate",
    "Decision",
    "DynamicGradScaler",
    "FallbackPolicy",
    "HardwareFacts",
    "Measurement",
    "OverflowReport",
    "OverflowTracer",
    "ProbePlan",
    "ProbeRecorder",
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
    from lightning_optkit.precision.plugin import AutoPrecision


def __getattr__(name: str) -> Any:
    if name == "AutoPrecision":
        from lightning_optkit.precision.plugin import AutoPrecision

        globals()[name] = AutoPrecision
        return AutoPrecision
    raise AttributeError(f"module 'lightning_optkit.precision' has no attribute {name!r}")
