"""Pure decision rules: hardware facts -> plausible precisions -> one choice, with reasons.

Nothing here touches a Trainer or a device; every function takes and returns plain values, so the
whole decision table is testable in microseconds under any mocked hardware.

The table (``mode="auto"``):

=============================  ==========================  =====================================
hardware                       candidates (preferred 1st)  reason
=============================  ==========================  =====================================
CUDA capability >= 8.0         bf16-mixed, 32-true         bf16 tensor cores, no loss scaling
CUDA capability 7.x            16-mixed, 32-true           fp16 tensor cores, with loss scaling
CUDA capability < 7.0          32-true                     no tensor cores: half precision gains
                                                           little and bf16 is emulated
CPU with AVX512-BF16 / AMX     bf16-mixed, 32-true         native bf16 (speed-up depends on the
                                                           model: the probe decides)
CPU without native bf16        32-true                     bf16 is emulated and far slower
other accelerators (MPS, XLA)  32-true                     the safe documented choice
=============================  ==========================  =====================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from lightning_optkit._checks import as_choice
from lightning_optkit.precision.hardware import HardwareFacts

__all__ = [
    "MODES",
    "PRECISIONS",
    "SIGNIFICAND_BITS",
    "Candidate",
    "Decision",
    "Measurement",
    "check_fixed_mode",
    "choose_measured",
    "fallback_target",
    "merge_rank_candidates",
    "merge_rank_measurements",
    "rule_candidates",
    "uses_scaler",
    "validate_mode",
]

PrecisionName = Literal["bf16-mixed", "16-mixed", "32-true"]
PRECISIONS: tuple[str, ...] = ("bf16-mixed", "16-mixed", "32-true")
"""The precisions, from the most demanding of the hardware to the one that runs everywhere."""
MODES: tuple[str, ...] = ("auto", *PRECISIONS)
SIGNIFICAND_BITS: dict[str, int] = {"32-true": 24, "16-mixed": 11, "bf16-mixed": 8}
"""Significand bits of the compute dtype: the number logged as ``amp/precision``."""
_MODE_ALIASES = {"16": "16-mixed", "bf16": "bf16-mixed", "32": "32-true", "16-true": "16-mixed",
                 "bf16-true": "bf16-mixed", "fp16": "16-mixed", "fp32": "32-true", "half": "16-mixed"}


def validate_mode(mode: str) -> str:
    """Return ``mode`` if it is ``"auto"`` or a precision; else a ``ValueError`` with the likely one."""
    return as_choice("mode", mode, MODES, aliases=_MODE_ALIASES, fix="use mode='auto' to let it decide")


def uses_scaler(precision: str) -> bool:
    """Whether ``precision`` needs loss scaling (only fp16 does)."""
    return precision == "16-mixed"


@dataclass(frozen=True)
class Candidate:
    """One plausible precision and why it is plausible.

    Attributes:
        precision: The precision.
        reason: Why it is plausible on this hardware.
        decisive: The hardware alone settles it: it is faster than every other candidate by a wide
            margin (tensor cores against fp32), so the probe does not spend steps to confirm it.
    """

    precision: str
    reason: str
    decisive: bool = False


@dataclass(frozen=True)
class Measurement:
    """Timed probe steps of one precision.

    Attributes:
        precision: The precision the steps ran in.
        median_ms: Median wall time of one measured step in milliseconds (``nan`` if none).
        steps: Number of measured (non warm-up, non skipped) steps.
        finite: Every probed loss of this precision was finite.
    """

    precision: str
    median_ms: float
    steps: int
    finite: bool


def rule_candidates(facts: HardwareFacts) -> list[Candidate]:
    """The plausible precisions for ``facts``, the rule's preferred one first, ``32-true`` last."""
    fp32 = Candidate("32-true", "runs everywhere; the reference")
    if facts.device_type == "cuda" and facts.cuda_capability is not None:
        cap = facts.cuda_capability
        text = f"{cap[0]}.{cap[1]}"
        if cap >= (8, 0):
            return [Candidate("bf16-mixed", f"CUDA capability {text} >= 8.0: bf16 tensor cores, "
                                            "no loss scaling needed", decisive=True), fp32]
        if cap >= (7, 0):
            return [Candidate("16-mixed", f"CUDA capability {text} (7.x): fp16 tensor cores with "
                                          "dynamic loss scaling; bf16 would only be emulated"), fp32]
        return [Candidate("32-true", f"CUDA capability {text} < 7.0: no tensor cores, half precision "
                                     "gains little and bf16 is emulated")]
    if facts.device_type == "cpu":
        if facts.cpu_bf16_native:
            unit = "AMX" if facts.cpu_amx else "AVX512-BF16"
            return [Candidate("bf16-mixed", f"CPU with native bf16 ({unit}); whether it beats fp32 "
                                            "depends on the model"), fp32]
        return [Candidate("32-true", f"CPU ({facts.cpu_capability or 'unknown'}) without native bf16 "
                                     "(AVX512-BF16/AMX): bf16 autocast is emulated and far slower")]
    return [Candidate("32-true", f"{facts.device_type} accelerator: 32-true is the safe choice; "
                                 "set mode explicitly to use half precision")]


def check_fixed_mode(mode: str, facts: HardwareFacts) -> list[str]:
    """Validate a fixed ``mode`` against the hardware.

    Returns:
        Warnings for precisions that run but slowly (training can go on).

    Raises:
        ValueError: The hardware cannot run ``mode`` at all.
    """
    warnings: list[str] = []
    where = facts.device_name if facts.device_type != "cpu" else f"this CPU ({facts.cpu_capability})"
    if mode == "16-mixed":
        if not facts.fp16_runs:
            raise ValueError(
                f"mode='16-mixed' cannot run on {facts.device_type} ({facts.device_name}): it has no "
                "fp16 arithmetic. Use mode='auto' or 'bf16-mixed' / '32-true'."
            )
        if facts.device_type == "cpu" and not facts.cpu_fp16_native:
            warnings.append(f"mode='16-mixed' on {where} without native fp16: fp16 autocast runs but "
                            "is slower than 32-true; use mode='auto' for speed")
        if facts.device_type == "cuda" and facts.cuda_capability and facts.cuda_capability < (7, 0):
            warnings.append(f"mode='16-mixed' on CUDA capability {facts.cuda_capability}: no tensor "
                            "cores, expect little speed-up")
    elif mode == "bf16-mixed":
        if not facts.bf16_runs:
            raise ValueError(
                f"mode='bf16-mixed' cannot run on {facts.device_type} ({facts.device_name}): no bf16 "
                "support. Use mode='auto', '16-mixed' or '32-true'."
            )
        if not facts.native_bf16 and facts.device_type in ("cuda", "cpu"):
            warnings.append(f"mode='bf16-mixed' on {where}: bf16 is emulated, not native, and "
                            "likely slower than 32-true; use mode='auto'")
    return warnings


def merge_rank_candidates(per_rank: Sequence[Sequence[str]]) -> list[str]:
    """The precisions every rank can use, most demanding first (the lowest common level).

    ``32-true`` is always kept, so the result is never empty.
    """
    common = set(PRECISIONS)
    for names in per_rank:
        common &= set(names)
    common.add("32-true")
    return [name for name in PRECISIONS if name in common]


def merge_rank_measurements(per_rank: Sequence[Mapping[str, Measurement]]) -> dict[str, Measurement]:
    """Combine the ranks' probes: a step lasts as long as the slowest rank, finite only if all are."""
    merged: dict[str, Measurement] = {}
    names = {name for rank in per_rank for name in rank}
    for name in names:
        rows = [rank[name] for rank in per_rank if name in rank]
        if len(rows) < len(per_rank):  # a rank did not measure it: not comparable
            merged[name] = Measurement(name, math.nan, 0, all(r.finite for r in rows))
            continue
        times = [r.median_ms for r in rows]
        merged[name] = Measurement(
            name,
            math.nan if any(math.isnan(t) for t in times) else max(times),
            min(r.steps for r in rows),
            all(r.finite for r in rows),
        )
    return merged


def choose_measured(
    candidates: Sequence[str], measurements: Mapping[str, Measurement], margin: float = 0.03
) -> tuple[str, list[str]]:
    """Keep the fastest candidate with finite losses; half precision must beat fp32 by ``margin``.

    Ties and near-ties go to ``32-true``, so a probed run is never slower than fp32 beyond noise.

    Returns:
        The chosen precision and the reasons, one line per candidate.
    """
    reasons: list[str] = []
    usable: dict[str, float] = {}
    for name in candidates:
        m = measurements.get(name)
        if m is None or m.steps == 0 or math.isnan(m.median_ms):
            reasons.append(f"{name}: not measured")
        elif not m.finite:
            reasons.append(f"{name}: rejected, non-finite loss in probe steps")
        else:
            usable[name] = m.median_ms
            reasons.append(f"{name}: {m.median_ms:.2f} ms/step (median of {m.steps})")
    if not usable:
        return "32-true", [*reasons, "no candidate measured: 32-true"]
    best = min(usable, key=usable.__getitem__)
    fp32 = usable.get("32-true")
    if best != "32-true" and fp32 is not None and usable[best] > fp32 * (1.0 - margin):
        reasons.append(f"{best} is not faster than 32-true by {margin:.0%}: 32-true kept")
        return "32-true", reasons
    reasons.append(f"fastest with finite loss: {best}")
    return best, reasons


def fallback_target(precision: str, facts: HardwareFacts) -> str:
    """The next rung of the ladder: fp16 -> bf16 where native, else fp32; bf16 -> fp32."""
    if precision == "16-mixed" and facts.native_bf16:
        return "bf16-mixed"
    return "32-true"


@dataclass
class Decision:
    """The record of a precision choice: what, from what, measured how, and why.

    Attributes:
        mode: The requested mode (``"auto"`` or a fixed precision).
        precision: The precision in use now.
        source: How it was chosen: ``"fixed"``, ``"rule"``, ``"probe"``, ``"fallback"``,
            or ``"pending"`` while a probe is running.
        candidates: The plausible precisions considered (after the ranks agreed).
        reasons: Human-readable lines explaining the choice.
        measurements: Per precision: ``median_ms``, ``steps`` and ``finite`` of the probe.
        hardware: The :class:`HardwareFacts` the rules saw, as a dict.
        fallbacks: Mid-run switches: ``step``, ``from``, ``to`` and ``reason`` each.
        world_size: Number of processes that agreed on the decision.
        resumed: The decision was restored from a checkpoint (no new probe).
    """

    mode: str = "auto"
    precision: str = "32-true"
    source: str = "rule"
    candidates: list[str] = field(default_factory=lambda: ["32-true"])
    reasons: list[str] = field(default_factory=list)
    measurements: dict[str, dict[str, Any]] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    fallbacks: list[dict[str, Any]] = field(default_factory=list)
    world_size: int = 1
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy (the form saved in checkpoints and recorded on the Trainer)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Inverse of :meth:`to_dict`; unknown keys are ignored, missing ones take defaults."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def __getitem__(self, key: str) -> Any:
        """Dict-style read access (``decision["precision"]``), as on :meth:`to_dict`."""
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def headline(self) -> str:
        """One line: the precision, how it was chosen and, if probed, the step times."""
        text = f"{self.precision} ({self.source}{', resumed' if self.resumed else ''}"
        timed = [f"{n} {m['median_ms']:.2f} ms" for n, m in self.measurements.items()
                 if m.get("median_ms") is not None]
        if timed:
            text += "; per step: " + ", ".join(timed)
        if self.fallbacks:
            last = self.fallbacks[-1]
            text += f"; fell back {last['from']} -> {last['to']} at step {last['step']}"
        return text + ")"

    def record(self) -> dict[str, Any]:
        """:meth:`to_dict` plus a ``summary`` headline: what is recorded on the Trainer."""
        return {**self.to_dict(), "summary": self.headline()}

    def summary(self) -> str:
        """A few lines for the start-of-fit printout."""
        lines = [f"AutoPrecision: {self.precision} (mode={self.mode}, {self.source}"
                 + (", resumed" if self.resumed else "") + f", candidates={self.candidates})"]
        lines += [f"  - {reason}" for reason in self.reasons]
        lines += [f"  - step {f['step']}: fell back {f['from']} -> {f['to']}: {f['reason']}"
                  for f in self.fallbacks]
        return "\n".join(lines)

    def hparams(self) -> dict[str, Any]:
        """Flat hyperparameters for the loggers (prefixed apart from the ``amp/*`` metrics)."""
        return {
            "auto_precision/mode": self.mode,
            "auto_precision/precision": self.precision,
            "auto_precision/source": self.source,
            "auto_precision/candidates": ",".join(self.candidates),
            "auto_precision/fallbacks": len(self.fallbacks),
        }


def decide(
    facts: HardwareFacts,
    mode: str = "auto",
    *,
    candidates: Sequence[str] | None = None,
    measurements: Mapping[str, Measurement] | None = None,
    margin: float = 0.03,
    world_size: int = 1,
) -> Decision:
    """Hardware facts (and, optionally, probe measurements) -> a :class:`Decision` with reasons.

    Args:
        facts: What the device can do.
        mode: ``"auto"`` or a fixed precision (checked against ``facts``; may raise ``ValueError``).
        candidates: The candidates the ranks agreed on (default: the rule's for ``facts``).
        measurements: Probe results; with two or more candidates the measured choice applies.
        margin: How much faster than fp32 half precision must be to be kept.
        world_size: Number of processes that agreed on the decision.

    Returns:
        The decision (``source`` ``"fixed"``, ``"rule"`` or ``"probe"``).
    """
    validate_mode(mode)
    hardware = facts.to_dict()
    if mode != "auto":
        reasons = [f"mode={mode!r} fixed by the user", *check_fixed_mode(mode, facts)]
        return Decision(mode, mode, "fixed", [mode], reasons, hardware=hardware, world_size=world_size)
    rules = rule_candidates(facts)
    names = list(candidates) if candidates is not None else [c.precision for c in rules]
    reasons = [c.reason for c in rules]
    if measurements and len(names) > 1:
        precision, why = choose_measured(names, measurements, margin)
        table = {n: {"median_ms": None if not math.isfinite(m.median_ms) else m.median_ms,
                     "steps": m.steps, "finite": m.finite} for n, m in measurements.items()}
        return Decision("auto", precision, "probe", names, reasons + why, table, hardware,
                        world_size=world_size)
    return Decision("auto", names[0], "rule", names, reasons, hardware=hardware, world_size=world_size)
