"""Pure core of the bottleneck profiler: phase accounting, diagnosis rules and report rendering.

Nothing here touches a ``Trainer``: the callback :class:`lightning_optkit.BottleneckProfiler`
feeds these pieces with what it measures.
"""

from lightning_optkit.profiling.accounting import PhaseAccountant
from lightning_optkit.profiling.measurements import Measurements, RankSummary
from lightning_optkit.profiling.phases import CATEGORIES, ActionClassifier
from lightning_optkit.profiling.report import build_report
from lightning_optkit.profiling.rules import RULES, THRESHOLDS, Finding, diagnose
from lightning_optkit.profiling.sampling import DeviceInfo

__all__ = [
    "PhaseAccountant",
    "Measurements",
    "RankSummary",
    "CATEGORIES",
    "ActionClassifier",
    "build_report",
    "RULES",
    "THRESHOLDS",
    "Finding",
    "diagnose",
    "DeviceInfo",
]
