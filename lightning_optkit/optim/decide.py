"""Pure planning: the user's settings on top of the rules, race affordability, the first choice.

:func:`make_plan` is the whole decision made before training: it takes the model and run
profiles and the :class:`~.settings.OptimizerSettings`, and returns a :class:`Plan` (the rules'
choice, the candidates and the search that should follow).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from lightning_optkit.optim.choice import Choice
from lightning_optkit.optim.inspect import ModelProfile, RunProfile
from lightning_optkit.optim.registry import get_optimizer_info
from lightning_optkit.optim.rules import Candidate, rank_candidates
from lightning_optkit.optim.settings import OptimizerSettings

__all__ = [
    "MIN_RUNG",
    "SAFETY_NET_STEPS",
    "Plan",
    "make_plan",
    "plan_candidates",
    "budget_steps",
    "resolve_mode",
    "rules_choice",
]

MIN_RUNG = 8  # fewest steps per candidate at a rung that a comparison can rest on
RACE_PARAM_LIMIT = 50_000_000  # without a memory reading, "auto" does not race above this
SAFETY_NET_STEPS = 2 * MIN_RUNG  # the most steps the safety net's runner-up may spend
_BYTES_PER_PARAM = 4 * 3  # fp32 weights + two optimizer state tensors, per candidate copy


@dataclass
class Plan:
    """The decision made before training, and the search that should follow it.

    Attributes:
        choice: The prior's first choice; its ``mode`` is what will run (``"rules"`` or
            ``"race"``).
        candidates: The candidates, best prior first.
        budget: The most steps the race may spend on losers (``None`` when the horizon is
            unknown and the budget is a fraction).
        lr_test: Whether an LR range test runs at the start of training.
    """

    choice: Choice
    candidates: list[Candidate]
    budget: int | None
    lr_test: bool

    @property
    def searches(self) -> bool:
        """Whether a search (LR test or race) runs at the start of training."""
        return self.choice.mode == "race" or self.lr_test


def make_plan(
    model: ModelProfile,
    run: RunProfile,
    settings: OptimizerSettings | None = None,
    automatic_optimization: bool = True,
    free_memory: int | None = None,
) -> Plan:
    """Rank the candidates, size the budget, choose between rules and race, plan the LR test.

    In ``"auto"`` mode a learning-rate free first choice of the rules (Prodigy) trains without a
    search; any other first choice races the candidates when the budget affords it and otherwise
    gets a safety net: a race of the first choice against the runner-up on the same batches
    (at most :data:`SAFETY_NET_STEPS` steps each) that replaces a first choice which does not
    learn, its steps counted as overhead.

    Args:
        model: The model profile.
        run: The run profile.
        settings: The user's settings (default: all automatic).
        automatic_optimization: Whether Lightning steps the optimizer (a race needs it).
        free_memory: Free bytes on the training device, or ``None`` if unknown: ``"auto"`` races
            when a copy of the weights and optimizer state per candidate fits in half of it (else
            up to :data:`RACE_PARAM_LIMIT` parameters).

    Raises:
        ValueError: If the model has no trainable parameters, no named optimizer is installed,
            or ``mode="race"`` cannot run (see :func:`resolve_mode`).
    """
    settings = settings or OptimizerSettings()
    if model.num_params == 0:
        raise ValueError("AutoOptimizer: the model has no trainable parameters; unfreeze "
                         "some layers before fit")
    family, cands, reasons = plan_candidates(model, run, settings)
    if not cands:
        named = None if settings.candidates is None else list(settings.candidates)
        raise ValueError(f"candidates={named!r}: no installed optimizer left to "
                         "choose from; install an optional package or name torch optimizers")
    budget = budget_steps(settings.budget, run.horizon)
    mode: str = settings.mode
    if mode != "rules" and not automatic_optimization:
        if mode == "race":
            raise ValueError("mode='race' needs automatic optimization; this module sets "
                             "automatic_optimization=False: use mode='rules'")
        mode = "rules"
    first, net = cands[0], False
    if mode == "auto" and settings.candidates is None and _lr_free(first):
        mode, why = "rules", (f"the rules' first choice {first.optimizer} is learning-rate free: "
                              "no search needed")
    else:
        mode, why = resolve_mode(mode, run.horizon, budget, len(cands), model.num_params,
                                 free_memory)
        if mode == "rules" and settings.mode == "auto" and len(cands) >= 2 and \
                automatic_optimization and why.startswith("horizon") and \
                (run.horizon is None or run.horizon >= 8 * SAFETY_NET_STEPS):
            cands, budget, mode, net = cands[:2], SAFETY_NET_STEPS, "race", True
            why = (f"safety net: {first.label} checked against {cands[1].label} on the same "
                   f"batches (at most {SAFETY_NET_STEPS} steps each); a first choice that does "
                   "not learn is replaced")
    choice = rules_choice(family, cands, reasons + [why], model, run, mode=mode)
    lr_test = settings.lr_test == "always" or (
        settings.lr_test == "auto" and mode == "race" and first.lr_confidence == "weak"
        and settings.lr is None and not _lr_free(first) and not net)
    return Plan(choice, cands, budget, lr_test)


def plan_candidates(
    model: ModelProfile,
    run: RunProfile,
    settings: OptimizerSettings | None = None,
) -> tuple[str, list[Candidate], list[str]]:
    """Rank candidates by the rules and apply the user's fixed values.

    Returns:
        ``(family, candidates, reasons)`` with at most ``settings.max_candidates`` candidates,
        best first.
    """
    settings = settings or OptimizerSettings()
    allowed = None if settings.candidates is None else list(settings.candidates)
    family, ranked, reasons = rank_candidates(model, run, allowed=allowed)
    lr, weight_decay = settings.lr, settings.weight_decay
    embedding_lr_mult, layer_decay = settings.embedding_lr_mult, settings.layer_decay
    out = []
    for c in ranked[:settings.max_candidates]:
        if lr is not None and not _lr_free(c):
            c = replace(c, lr=lr, lr_confidence="strong")
        if weight_decay is not None:
            c = replace(c, weight_decay=weight_decay)
        if embedding_lr_mult is not None:
            c = replace(c, embedding_lr_mult=embedding_lr_mult)
        if layer_decay is not None:
            c = replace(c, layer_decay=layer_decay)
        out.append(c)
    seen: set[str] = set()
    unique = []
    for c in out:
        label = c.label
        if label in seen:
            continue
        seen.add(label)
        unique.append(c)
    if lr is not None:
        reasons.append(f"lr fixed by the user: {lr:g}")
    return family, unique, reasons


def _lr_free(c: Candidate) -> bool:
    return get_optimizer_info(c.optimizer).lr_free


def budget_steps(budget: float, horizon: int | None) -> int | None:
    """The losers' step budget: a fraction of the horizon (< 1) or a number of steps (>= 1).

    ``budget`` is positive (:class:`~.settings.OptimizerSettings` checks it).

    Raises:
        ValueError: If the budget is not smaller than the run.
    """
    if budget < 1:
        if horizon is None:
            return None
        return int(math.floor(budget * horizon))
    steps = int(budget)
    if horizon is not None and steps >= horizon:
        raise ValueError(
            f"budget={budget:g} steps is not smaller than the run ({horizon} steps); use a "
            "fraction such as 0.05 or fewer steps"
        )
    return steps


def resolve_mode(
    mode: str, horizon: int | None, budget: int | None, num_candidates: int,
    num_params: int = 0, free_memory: int | None = None,
) -> tuple[str, str]:
    """Decide between ``"rules"`` and ``"race"``; returns ``(mode, reason)``.

    ``"auto"`` does not race a model whose weight and optimizer-state copies (one per candidate
    and the original) would take more than half of ``free_memory`` bytes, or, when the free
    memory is unknown, a model above :data:`RACE_PARAM_LIMIT` parameters.

    Raises:
        ValueError: If ``mode="race"`` is asked for where the horizon is unknown or the budget
            cannot give each candidate a comparable number of steps.
    """
    need = MIN_RUNG * max(1, num_candidates - 1)
    if mode == "rules":
        return "rules", "mode='rules': instant choice from the family priors"
    if num_candidates < 2:
        if mode == "race":
            raise ValueError(
                "mode='race' needs at least two installed candidates; add names to `candidates` "
                "or use mode='rules'"
            )
        return "rules", "a single candidate: nothing to race"
    if horizon is None or budget is None:
        if mode == "race":
            raise ValueError(
                "mode='race' needs a known horizon (max_steps or max_epochs with a sized "
                "dataloader) to size its budget; set max_steps, give `budget` in steps (e.g. 50) "
                "or use mode='rules'"
            )
        return "rules", "horizon unknown: rules only"
    copies = num_params * _BYTES_PER_PARAM * (num_candidates + 1)
    if mode == "auto" and free_memory is not None and copies > free_memory // 2:
        return "rules", (f"{num_params:,} parameters: a weight and state copy per candidate "
                         f"({copies / 2**30:.1f} GiB) does not fit in half the free memory "
                         f"({free_memory / 2**30:.1f} GiB); rules only (mode='race' forces it)")
    if mode == "auto" and free_memory is None and num_params > RACE_PARAM_LIMIT:
        return "rules", (f"{num_params:,} parameters: racing would keep a weight copy per "
                         "candidate and the free memory is unknown; rules only (mode='race' "
                         "forces it)")
    if budget < need:
        if mode == "race":
            raise ValueError(
                f"budget={budget} steps cannot race {num_candidates} candidates (needs >= {need} "
                f"steps, {MIN_RUNG} per loser); raise `budget`, lengthen the run or use "
                "mode='rules'"
            )
        return "rules", (f"horizon {horizon} steps too short to race (budget {budget} < {need} "
                         "steps): rules only")
    return "race", f"racing {num_candidates} candidates within {budget} loser steps"


def rules_choice(
    family: str, candidates: list[Candidate], reasons: list[str], model: ModelProfile,
    run: RunProfile, mode: str = "rules",
) -> Choice:
    """The choice made from the first candidate, before any search."""
    first = candidates[0]
    return Choice(
        **first.spec_fields(), family=family, mode=mode,
        candidates=[dict(c.to_dict(), label=c.label) for c in candidates],
        reasons=list(reasons) + [f"prior's first choice: {first.label} ({first.reason})"],
        model=model.to_dict(), run=run.to_dict(),
    )
