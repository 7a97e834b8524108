"""Findings: the record a diagnosis rule produces, the severity thresholds and the ranking."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Finding", "Severity", "Thresholds", "THRESHOLDS", "SEVERITY_RANK", "SHARE_HIGH", "SHARE_MEDIUM",
           "severity_for", "rank_findings"]

Severity = Literal["high", "medium", "low"]
SEVERITY_RANK = {"high": 2, "medium": 1, "low": 0}


@dataclass(frozen=True)
class Thresholds:
    """Share at which a finding becomes low, medium and high."""

    low: float
    medium: float
    high: float


#: Thresholds per finding code (share of wall time, or of memory for the memory codes).
THRESHOLDS: dict[str, Thresholds] = {
    "dataloader": Thresholds(0.05, 0.10, 0.25),
    "host_to_device": Thresholds(0.05, 0.10, 0.25),
    "host_sync": Thresholds(0.02, 0.05, 0.15),
    "small_steps": Thresholds(0.40, 0.50, 0.65),
    "no_mixed_precision": Thresholds(0.15, 0.25, 0.40),
    "optimizer": Thresholds(0.10, 0.20, 0.35),
    "callback": Thresholds(0.03, 0.08, 0.20),
    "logging": Thresholds(0.05, 0.10, 0.25),
    "validation": Thresholds(0.10, 0.20, 0.40),
    "checkpoint": Thresholds(0.05, 0.10, 0.25),
    "rank_imbalance": Thresholds(0.05, 0.10, 0.25),
    "recompilation": Thresholds(0.03, 0.08, 0.20),
    "memory_pressure": Thresholds(0.80, 0.90, 0.97),
    "memory_growth": Thresholds(0.05, 0.10, 0.25),
}


@dataclass
class Finding:
    """One diagnosed cause.

    Attributes:
        code: Stable identifier (``dataloader``, ``callback``, ...).
        severity: ``high``, ``medium`` or ``low``.
        share: Part of the wall time it costs (of the memory for ``memory_*``), in [0, 1].
        evidence: The measured numbers behind it.
        where: The code or setting responsible (callback and hook, file and line where known).
        recommendation: What to change, in Lightning terms.
        share_of: ``"time"`` or ``"memory"``.
    """

    code: str
    severity: Severity
    share: float
    evidence: dict[str, Any] = field(default_factory=dict)
    where: str = ""
    recommendation: str = ""
    share_of: Literal["time", "memory"] = "time"

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        data = asdict(self)
        data["share"] = round(self.share, 4)
        return data


#: Whatever its code, a finding holding this share of the wall time is at least high / medium: a
#: code's own thresholds only decide below these (severities follow the share of time).
SHARE_HIGH = 0.40
SHARE_MEDIUM = 0.20


def severity_for(code: str, share: float) -> Severity | None:
    """The severity of ``share`` for ``code`` (``None`` below the low threshold).

    For shares of time, the severity is at least ``high`` from :data:`SHARE_HIGH` and at least
    ``medium`` from :data:`SHARE_MEDIUM` (the memory codes keep their own thresholds).
    """
    t = THRESHOLDS[code]
    if share < t.low:
        return None
    if not code.startswith("memory_"):
        if share >= SHARE_HIGH:
            return "high"
        if share >= SHARE_MEDIUM and share < t.high:
            return "medium"
    if share >= t.high:
        return "high"
    if share >= t.medium:
        return "medium"
    if share >= t.low:
        return "low"
    return None


def rank_findings(findings: list[Finding]) -> list[Finding]:
    """Order findings: shares of time and shares of memory are not comparable, so

    * time findings (``share_of == "time"``) are ordered by share, largest first (then severity);
    * a memory finding is placed by its severity: just before the first time finding of a lower
      severity (at the end if there is none); memory findings at the same place are ordered by
      severity, then share.
    """
    times = sorted((f for f in findings if f.share_of != "memory"),
                   key=lambda f: (f.share, SEVERITY_RANK[f.severity]), reverse=True)
    memory = [f for f in findings if f.share_of == "memory"]

    def place(finding: Finding) -> int:
        rank = SEVERITY_RANK[finding.severity]
        return next((i for i, t in enumerate(times) if SEVERITY_RANK[t.severity] < rank), len(times))

    keyed = [((i, 1, 0, 0.0), f) for i, f in enumerate(times)]
    keyed += [((place(f), 0, -SEVERITY_RANK[f.severity], -f.share), f) for f in memory]
    keyed.sort(key=lambda pair: pair[0])
    return [f for _, f in keyed]
