"""Pure planning: user overrides on top of the rules, race affordability, the rules-only choice."""

from __future__ import annotations

import math
from dataclasses import replace

from lightning_optkit.optim.choice import Choice
from lightning_optkit.optim.inspect import ModelProfile, RunProfile
from lightning_optkit.optim.registry import resolve_optimizer_class
from lightning_optkit.optim.rules import Candidate, rank_candidates

__all__ = [
    "MIN_RUNG",
    "plan_candidates",
    "budget_steps",
    "resolve_mode",
    "rules_choice",
    "validate_settings",
]

MIN_RUNG = 8  # fewest steps per candidate at a rung that a comparison can rest on
RACE_PARAM_LIMIT = 50_000_000  # above this, "auto" does not race (a weight copy per candidate)


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}")


def _check_positive(name: str, value: float | None, example: str) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{name}={value!r} must be > 0 (such as {example}) or None for automatic")


def validate_settings(
    mode: str = "auto",
    candidates: list[str] | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    embedding_lr_mult: float | None = None,
    layer_decay: float | None = None,
    budget: float = 0.05,
    lr_test: str = "auto",
    kernel: str = "auto",
    max_candidates: int = 3,
) -> None:
    """Check ``AutoOptimizer``'s arguments; each error names the argument, the rule and a fix.

    Raises:
        ValueError: On a bad value (an unknown optimizer name lists the valid ones).
        MissingOptimizerPackage: If a named optimizer's package is not installed (also a
            ``ValueError`` and an ``ImportError``).
    """
    _check_choice("mode", mode, ("auto", "rules", "race"))
    _check_choice("lr_test", lr_test, ("auto", "always", "never"))
    _check_choice("kernel", kernel, ("auto", "fused", "foreach", "for-loop"))
    _check_positive("lr", lr, "1e-3")
    _check_positive("embedding_lr_mult", embedding_lr_mult, "10.0")
    if not budget > 0:
        raise ValueError(f"budget={budget!r} must be > 0: a fraction of the run such as 0.05, "
                         "or a number of steps such as 50")
    if weight_decay is not None and weight_decay < 0:
        raise ValueError(f"weight_decay={weight_decay!r} must be >= 0, such as 0.01, or None")
    if layer_decay is not None and not 0 < layer_decay <= 1:
        raise ValueError(f"layer_decay={layer_decay!r} must lie in (0, 1], such as 0.75, or None")
    if max_candidates < 1:
        raise ValueError(f"max_candidates={max_candidates!r} must be >= 1, such as 3")
    if candidates is not None:
        if len(candidates) == 0:
            raise ValueError("candidates=[] is empty; name at least one optimizer, such as "
                             "['adamw', 'sgd'], or pass None to let the rules choose")
        for name in candidates:
            try:
                resolve_optimizer_class(name)
            except (ValueError, ImportError) as err:
                raise type(err)(f"candidates: {err}") from err


def plan_candidates(
    model: ModelProfile,
    run: RunProfile,
    candidates: list[str] | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    embedding_lr_mult: float | None = None,
    layer_decay: float | None = None,
    max_candidates: int = 3,
) -> tuple[str, list[Candidate], list[str]]:
    """Rank candidates by the rules and apply the user's fixed values.

    Returns:
        ``(family, candidates, reasons)`` with at most ``max_candidates`` candidates, best first.
    """
    family, ranked, reasons = rank_candidates(model, run, allowed=candidates)
    out = []
    for c in ranked[:max_candidates]:
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
    from lightning_optkit.optim.registry import get_optimizer_info

    return get_optimizer_info(c.optimizer).lr_free


def budget_steps(budget: float, horizon: int | None) -> int | None:
    """The losers' step budget: a fraction of the horizon (< 1) or a number of steps (>= 1).

    Raises:
        ValueError: If the budget is not positive or is not smaller than the run.
    """
    if not budget > 0:
        raise ValueError(f"budget={budget!r} must be > 0: a fraction of the run such as 0.05, "
                         "or a number of steps such as 50")
    if budget < 1:
        if horizon is None:
            return None
        return int(math.floor(budget * horizon))
    steps = int(budget)
    if horizon is not None and steps >= horizon:
        raise ValueError(
            f"budget={budget!r} steps is not smaller than the run ({horizon} steps); use a "
            "fraction such as 0.05 or fewer steps"
        )
    return steps


def resolve_mode(
    mode: str, horizon: int | None, budget: int | None, num_candidates: int,
    num_params: int = 0,
) -> tuple[str, str]:
    """Decide between ``"rules"`` and ``"race"``; returns ``(mode, reason)``.

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
    if mode == "auto" and num_params > RACE_PARAM_LIMIT:
        return "rules", (f"{num_params:,} parameters: racing would keep a weight copy per "
                         "candidate; rules only (mode='race' forces it)")
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
        optimizer=first.optimizer, lr=first.lr, weight_decay=first.weight_decay,
        hparams=dict(first.hparams), embedding_lr_mult=first.embedding_lr_mult,
        layer_decay=first.layer_decay, family=family, mode=mode,
        candidates=[dict(c.to_dict(), label=c.label) for c in candidates],
        reasons=list(reasons) + [f"prior's first choice: {first.label} ({first.reason})"],
        model=model.to_dict(), run=run.to_dict(),
    )
