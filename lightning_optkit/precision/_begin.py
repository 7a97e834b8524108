"""The decision on the first step of ``AutoPrecision``: resume, fixed mode, rank agreement, probe.

Runs once, on the first training step (or the first evaluation step outside fit), after Lightning
restored any checkpoint. Every collective here is reached by all ranks at the same point.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from lightning_optkit._trainer import set_search_phase
from lightning_optkit.precision import _steps
from lightning_optkit.precision.decision import (
    PRECISIONS,
    Decision,
    decide,
    merge_rank_candidates,
    rule_candidates,
)
from lightning_optkit.precision.probe import ProbePlan, ProbeRecorder

if TYPE_CHECKING:  # pragma: no cover
    from lightning_optkit.precision.plugin import AutoPrecision

__all__ = ["agree", "resume", "start"]


def start(plugin: AutoPrecision, trainer: Any, fitting: bool) -> None:
    """Make (or restore) the decision and activate its precision; start the probe if needed."""
    assert plugin.facts is not None
    rules = rule_candidates(plugin.facts)
    reasons = [c.reason for c in rules] + plugin._fixed_warnings
    loaded = plugin._loaded_decision
    if loaded is not None and loaded.mode == plugin.mode and loaded.source != "pending":
        if resume(plugin, trainer, loaded, [c.precision for c in rules], fitting):
            return
        reasons.append(f"the checkpoint's {loaded.precision} is not plausible on this hardware: decided anew")
    world = _steps.world_size(trainer)
    if plugin.mode != "auto":
        plugin.decision = decide(plugin.facts, plugin.mode, world_size=world)
        plugin._activate(plugin.mode)
        plugin._announce(trainer)
        return
    names = [c.precision for c in rules]
    if plugin._no_scaler_reason and "16-mixed" in names:
        names.remove("16-mixed")
        reasons.append(plugin._no_scaler_reason)
    if world > 1 and fitting:
        names = agree(trainer, names, reasons)
    plugin.decision = decide(plugin.facts, "auto", candidates=names, world_size=world)
    plugin.decision.reasons = reasons
    can_probe = fitting and plugin._automatic and len(getattr(trainer, "optimizers", [])) == 1
    if len(names) > 1 and plugin.probe and can_probe:
        options = dict(plugin.probe_plan_options)
        if world > 1:  # every rank must run the same schedule: no rank-local early rejection
            options["reject_factor"] = math.inf
        plugin._probe = ProbeRecorder(ProbePlan(tuple(names), **options))  # type: ignore[arg-type]
        plugin.decision.source = "pending"
        set_search_phase(trainer, "precision_probe")
        plugin._activate(plugin._probe.current() or names[0])
        return
    if len(names) > 1:
        why = "probe=False" if not plugin.probe else "the probe needs fit, automatic optimization, one optimizer"
        plugin.decision.reasons.append(f"no probe ({why}): rule's preferred {names[0]}")
    plugin._activate(names[0])
    plugin._announce(trainer)


def agree(trainer: Any, names: list[str], reasons: list[str]) -> list[str]:
    """The candidates every rank has (all-gather of one flag per precision)."""
    rows = _steps.gather_rows(trainer, [1.0 if p in names else 0.0 for p in PRECISIONS])
    agreed = merge_rank_candidates([[p for p, v in zip(PRECISIONS, r) if v >= 0.5] for r in rows])
    if agreed != names:
        reasons.append(f"ranks agreed on the common candidates {agreed} (this rank: {names})")
    return agreed


def resume(plugin: AutoPrecision, trainer: Any, loaded: Decision, plausible: list[str], fitting: bool) -> bool:
    """Keep a restored decision (no probe) if every rank can still run it fast."""
    ok = plugin.mode != "auto" or loaded.precision in plausible
    if _steps.world_size(trainer) > 1 and fitting:
        ok = min(row[0] for row in _steps.gather_rows(trainer, [1.0 if ok else 0.0])) >= 0.5
    if not ok:
        return False
    loaded.resumed = True
    plugin.decision = loaded
    plugin._calibrate_pending = False
    plugin._activate(loaded.precision)
    plugin._announce(trainer)
    return True
