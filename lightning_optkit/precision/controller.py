"""The life cycle of one run's precision decision, with no Trainer: ``PrecisionController``.

The controller holds what the decision needs and what it produced: the hardware facts, the
decision restored from a checkpoint, the probe in progress, the rank count, the
:class:`~lightning_optkit.precision.decision.Decision` itself and the precision the run should use
now (:attr:`PrecisionController.precision`). It never touches a device, a model or a Trainer:

* the rank exchange is a callable ``gather(row) -> rows`` (every rank sends a float list of the
  same length and receives all of them, in rank order);
* the decision leaves through a callable ``publish(decision)``, called whenever it is made or
  changes (the first call is the decision; later ones are fallbacks).

Its life cycle::

    set_hardware(facts)        # setup: fixed modes are checked here (ValueError if impossible)
    exclude(...) / restore(...)  # optional: LBFGS excludes fp16; a checkpoint's decision
    start(world_size, ...)     # fixed, restored, rule, or the first probe step
    record_step(...)           # each probe step, until the probe chooses (measured)
    watch(stats, step)         # fp16 counters: may fall back to bf16 / fp32
    finish_probe(...)          # the end of the run cuts a probe short

Every collective (``gather``) is reached by all ranks at the same point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from lightning_optkit.precision.decision import (
    PRECISIONS,
    Decision,
    check_fixed_mode,
    choose_measured,
    decide,
    fallback_target,
    merge_rank_candidates,
    merge_rank_measurements,
    rule_candidates,
    validate_mode,
)
from lightning_optkit.precision.hardware import HardwareFacts
from lightning_optkit.precision.ladder import CollapseDetector
from lightning_optkit.precision.options import FallbackPolicy, ProbePlan
from lightning_optkit.precision.probe import ProbeRecorder

__all__ = ["Gather", "PrecisionController", "Publish"]

Gather = Callable[[list[float]], list[list[float]]]
"""Every rank's row (same length on all ranks), in rank order."""
Publish = Callable[[Decision], None]
"""Receives the decision whenever it is made or changes."""


def _alone(row: list[float]) -> list[list[float]]:
    return [list(row)]


def _nowhere(decision: Decision) -> None:
    return None


class PrecisionController:
    """Makes, measures, agrees on and revises one run's precision decision.

    Args:
        mode: ``"auto"`` or a fixed precision (``"bf16-mixed"``, ``"16-mixed"``, ``"32-true"``).
        probe: In ``"auto"`` mode, time the plausible precisions on real steps and keep the fastest.
        plan: The probe's steps, rounds, warm-ups, margin and early rejection.
        fallback: The fp16 collapse thresholds; ``None`` never falls back.
        gather: The rank exchange (default: a single process).
        publish: Where the decision goes when it is made or changes.
    """

    def __init__(
        self,
        mode: str = "auto",
        *,
        probe: bool = True,
        plan: ProbePlan | None = None,
        fallback: FallbackPolicy | None = None,
        gather: Gather = _alone,
        publish: Publish = _nowhere,
    ) -> None:
        self.mode = validate_mode(mode)
        self.probe = bool(probe)
        self.plan = ProbePlan() if plan is None else plan
        self.gather = gather
        self.publish = publish
        self.precision = mode if mode != "auto" else "32-true"
        self.facts: HardwareFacts | None = None
        self.decision: Decision | None = None
        self.world_size = 1
        self.started = False
        self.recorder: ProbeRecorder | None = None
        self._collapse = None if fallback is None else CollapseDetector(fallback)
        self._restored: Decision | None = None
        self._warnings: list[str] = []
        self._context: list[str] = []
        self._excluded: dict[str, str] = {}

    # ------------------------------------------------------------------ before the start
    def set_hardware(self, facts: HardwareFacts) -> list[str]:
        """Keep the facts the rules read; check a fixed mode against them.

        Returns:
            Warnings for a fixed precision that runs, but slowly.

        Raises:
            ValueError: The hardware cannot run the fixed mode at all.
        """
        self.facts = facts
        self._context = []
        self._warnings = [] if self.mode == "auto" else check_fixed_mode(self.mode, facts)
        return list(self._warnings)

    def add_context(self, reason: str) -> None:
        """A line the decision will carry among its reasons (e.g. the TF32 policy), set before :meth:`start`."""
        if reason:
            self._context.append(reason)

    def exclude(self, precision: str, reason: str) -> None:
        """Never choose ``precision`` in ``"auto"`` mode (e.g. fp16 for LBFGS), saying ``reason``."""
        self._excluded[precision] = reason

    def restore(self, decision: Decision | Mapping[str, Any]) -> None:
        """Offer a checkpoint's decision; :meth:`start` keeps it if it still fits."""
        self._restored = decision if isinstance(decision, Decision) else Decision.from_dict(decision)

    @property
    def probing(self) -> bool:
        """A probe is running: the current steps are measured."""
        return self.recorder is not None

    # ------------------------------------------------------------------ the start
    def start(self, *, world_size: int = 1, fitting: bool = True, can_probe: bool = True,
              deterministic: bool = False) -> str:
        """Make (or restore) the decision; start the probe when it has to measure.

        Args:
            world_size: Number of processes; above one, the ranks agree (during fit).
            fitting: The run trains (else: validation, test or prediction alone, no collective).
            can_probe: Training steps can be measured (automatic optimization, one optimizer).
            deterministic: The run must be reproducible (``Trainer(deterministic=True)``): the
                decision comes from the rules alone, never from a timing.

        Returns:
            The precision to run now.
        """
        if self.facts is None:
            raise RuntimeError("PrecisionController.start() needs set_hardware(facts) first")
        self.started = True
        self.world_size = max(1, int(world_size))
        collective = self.world_size > 1 and fitting
        rules = rule_candidates(self.facts)
        names = [c.precision for c in rules]
        reasons = [c.reason for c in rules] + self._warnings + self._context
        restored = self._restored
        if restored is not None and restored.mode == self.mode and restored.source != "pending":
            if self._resume(restored, names, collective):
                return self.precision
            reasons.append(f"the checkpoint's {restored.precision} is not plausible on this hardware: "
                           "decided anew")
        if self.mode != "auto":
            decision = decide(self.facts, self.mode, world_size=self.world_size)
            decision.reasons.extend(self._context)
            return self._settle(decision)
        for precision, why in self._excluded.items():
            if precision in names:
                names.remove(precision)
                reasons.append(why)
        if collective:
            names = self._agree(names, reasons)
        decision = decide(self.facts, "auto", candidates=names, world_size=self.world_size)
        decision.reasons = reasons
        decisive = bool(rules) and rules[0].decisive and names[:1] == [rules[0].precision]
        if len(names) > 1 and self.probe and can_probe and fitting and not deterministic and not decisive:
            self.recorder = ProbeRecorder(self.plan, tuple(names), reject_early=self.world_size == 1)
            decision.source = "pending"
            self.decision = decision
            self.precision = self.recorder.current() or names[0]
            return self.precision
        if len(names) > 1:
            decision.reasons.append(self._unmeasured(decision, names, can_probe, fitting, deterministic, decisive))
        return self._settle(decision)

    def _unmeasured(self, decision: Decision, names: list[str], can_probe: bool, fitting: bool,
                    deterministic: bool, decisive: bool) -> str:
        """Choose among several candidates without a probe; the reason, for the decision."""
        if decisive:
            return f"no probe: the hardware alone settles {names[0]} (wide margin over {', '.join(names[1:])})"
        if not self.probe:
            why = "probe=False"
        elif deterministic:
            why = "deterministic=True: the choice must not depend on a timing"
        else:
            why = "the probe needs fit, automatic optimization and one optimizer"
        assert self.facts is not None
        if self.facts.device_type == "cpu" and "32-true" in names:
            # a CPU's half precision wins or loses by the model: unmeasured, keep the reference
            decision.precision = "32-true"
            return f"no probe ({why}): 32-true kept, since bf16 on a CPU can be slower and was not measured"
        return f"no probe ({why}): rule's preferred {names[0]}"

    def _settle(self, decision: Decision) -> str:
        self.decision = decision
        self.precision = decision.precision
        self.publish(decision)
        return self.precision

    def _resume(self, restored: Decision, plausible: Sequence[str], collective: bool) -> bool:
        """Keep a restored decision (no probe) if every rank can still run it fast."""
        ok = self.mode != "auto" or restored.precision in plausible
        if collective:
            ok = min(row[0] for row in self.gather([1.0 if ok else 0.0])) >= 0.5
        if not ok:
            return False
        restored.resumed = True
        self._settle(restored)
        return True

    def _agree(self, names: list[str], reasons: list[str]) -> list[str]:
        """The candidates every rank has (all-gather of one flag per precision)."""
        rows = self.gather([1.0 if p in names else 0.0 for p in PRECISIONS])
        agreed = merge_rank_candidates([[p for p, v in zip(PRECISIONS, r) if v >= 0.5] for r in rows])
        if agreed != names:
            reasons.append(f"ranks agreed on the common candidates {agreed} (this rank: {names})")
        return agreed

    # ------------------------------------------------------------------ the probe
    def record_step(self, seconds: float | None, finite: bool, skipped: bool = False) -> str:
        """Record the probe step just run; choose when the probe is over.

        Args:
            seconds: Wall time of the step (``None`` when it could not be timed).
            finite: The step's loss was finite.
            skipped: The loss scaler skipped the step's update (fp16 overflow).

        Returns:
            The precision of the next step (the chosen one once the probe is over).
        """
        recorder = self.recorder
        if recorder is None:
            return self.precision
        recorder.record(seconds, finite, skipped)
        upcoming = recorder.current()
        if upcoming is None:
            return self.finish_probe(collective=True)
        self.precision = upcoming
        return upcoming

    def finish_probe(self, collective: bool = True) -> str:
        """Choose from the probe's measurements (merged over the ranks) and publish.

        Args:
            collective: Every rank reaches this point (the probe's last step); ``False`` when the
                end of the run cut the probe short, where a multi-process run keeps the current
                precision rather than wait on the other ranks.

        Returns:
            The chosen precision.
        """
        recorder, self.recorder = self.recorder, None
        decision = self.decision
        if recorder is None or decision is None:
            return self.precision
        names = list(recorder.candidates)
        measured = recorder.measurements()
        if self.world_size > 1 and collective:
            rows = self.gather(ProbeRecorder.encode(measured, names))
            measured = merge_rank_measurements([ProbeRecorder.decode(r, names) for r in rows])
        if self.world_size > 1 and not collective:
            precision, reasons = self.precision, ["probe cut short by the end of the run"]
        else:
            precision, reasons = choose_measured(names, measured, self.plan.margin)
            cost = recorder.cost_seconds(precision)
            spent = [] if cost is None else [f"probe cost: {recorder.index} steps, {cost:.2f} s more than running "
                               f"{precision} from the start"]
            reasons = [*recorder.rejected.values(), *spent, *reasons]
            if recorder.index < recorder.total_steps:
                reasons.insert(0, f"probe cut short after {recorder.index} of {recorder.total_steps} steps")
        decision.precision, decision.source = precision, "probe"
        decision.measurements = {
            name: {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                   for k, v in asdict(m).items() if k != "precision"}
            for name, m in measured.items()
        }
        decision.reasons.extend(reasons)
        return self._settle(decision)

    # ------------------------------------------------------------------ during training
    def note(self, reason: str) -> None:
        """Add a line to the decision's reasons (e.g. the first batch's scale calibration)."""
        if self.decision is not None:
            self.decision.reasons.append(reason)

    def watch(self, stats: Mapping[str, float], step: int) -> str | None:
        """Feed the fp16 scaler's counters; fall back when loss scaling collapsed.

        Returns:
            The warning to show when the precision changed, else ``None``.
        """
        if self._collapse is None:
            return None
        reason = self._collapse.check(stats)
        return None if reason is None else self.fall_back(reason, step)

    def fall_back(self, reason: str, step: int) -> str:
        """Leave fp16 for the next rung of the ladder, on every rank at the same step.

        Returns:
            The warning that names the switch.
        """
        assert self.facts is not None and self.decision is not None
        source = self.precision
        target = fallback_target(source, self.facts)
        if self.world_size > 1:
            rows = self.gather([1.0 if target == "bf16-mixed" else 0.0])
            if min(r[0] for r in rows) < 0.5:
                target = "32-true"
        self.decision.fallbacks.append({"step": step, "from": source, "to": target, "reason": reason})
        self.decision.precision, self.decision.source = target, "fallback"
        self._settle(self.decision)
        return (f"AutoPrecision: fp16 loss scaling collapsed ({reason}); switching {source} -> {target} "
                f"after step {step}. The switch is saved in checkpoints.")
