"""The searches ``AutoOptimizer`` runs at the start of training: the LR range test, then the race.

:class:`OptimizerSearch` holds what the plan left to search (candidates, budget, kernels, whether
to test the LR) and :meth:`OptimizerSearch.run` takes everything else as explicit inputs (the
choice, the model, one training step, a batch source, the rank broadcast) and returns a
:class:`SearchOutcome`; the callback writes the outcome back. Nothing here imports Lightning: the
step and the batches come from :mod:`.steps`, and a test can pass plain closures.

Both searches leave the model either restored (LR test) or holding the winner's weights (race).
The cost is recorded in the choice (``overhead_steps``: steps that did not become progress,
``overhead_seconds``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from lightning_optkit.optim.choice import Choice
from lightning_optkit.optim.groups import describe_groups
from lightning_optkit.optim.race import plan_race
from lightning_optkit.optim.rules import Candidate
from lightning_optkit.optim.runner import StepFn, run_lr_test, run_race

__all__ = ["OptimizerSearch", "SearchOutcome"]

_T = TypeVar("_T")

_MIN_LOSER_STEPS = 8  # fewest steps per loser that a race left after the LR test can compare


def _same(value: _T) -> _T:
    return value


@dataclass
class SearchOutcome:
    """What a search decided.

    Attributes:
        choice: The final choice, with the LR test and race records and their cost.
        optimizer: The optimizer to train with from now on (the race winner's, with its state),
            or ``None`` when the optimizer built before the search stays.
    """

    choice: Choice
    optimizer: torch.optim.Optimizer | None


@dataclass
class OptimizerSearch:
    """The pending LR range test and race of one fit.

    Attributes:
        candidates: The candidates, best prior first (the first is the choice's).
        budget: The most steps the race may spend on losers.
        lr_test: Whether to run the LR range test on the first candidate first.
        kernels: The kernel of each candidate optimizer (``"auto"`` where missing).
    """

    candidates: list[Candidate]
    budget: int
    lr_test: bool
    kernels: dict[str, str]

    def run(
        self,
        choice: Choice,
        model: nn.Module,
        step: StepFn,
        next_batch: Callable[[], Any],
        broadcast: Callable[[Any], Any] = _same,
    ) -> SearchOutcome:
        """Run the searches on real batches; ``choice`` itself is left unchanged.

        Args:
            choice: The choice made before the search (its ``mode`` says whether to race).
            model: The model being trained (its weights are snapshotted and restored).
            step: One training step, ``step(optimizer, batch) -> loss`` (reduced across ranks).
            next_batch: The next real training batch.
            broadcast: Rank zero's value on every rank (the race winner).
        """
        t0 = time.perf_counter()
        choice = choice.copy()
        cands = list(self.candidates)
        spent = 0
        optimizer = None
        if self.lr_test:
            spent = self._lr_test(choice, cands, model, step, next_batch)
        if choice.mode == "race":
            left = self.budget - spent
            if left // max(1, len(cands) - 1) < _MIN_LOSER_STEPS:
                choice.reasons.append("LR test used the budget: no race")
            else:
                choice, optimizer, losers = self._race(choice, cands, left, model, step,
                                                       next_batch, broadcast)
                spent += losers
        if choice.lr_test is not None and choice.race is None:
            optimizer = choice.build(model)
        choice.overhead_steps = spent
        choice.overhead_seconds = round(choice.overhead_seconds + time.perf_counter() - t0, 3)
        return SearchOutcome(choice, optimizer)

    def _trial(self, choice: Choice, candidate: Candidate) -> Choice:
        return choice.with_spec(candidate, self.kernels.get(candidate.optimizer, "auto"))

    def _lr_test(self, choice: Choice, cands: list[Candidate], model: nn.Module, step: StepFn,
                 next_batch: Callable[[], Any]) -> int:
        """Sweep the first candidate's LR; set the suggestion in ``choice`` and ``cands``."""
        first = cands[0]
        n = max(8, min(40, self.budget // 3 if choice.mode == "race" else 40))
        batches = [next_batch() for _ in range(n)]
        trial = self._trial(choice, first)
        result, spent = run_lr_test(model, lambda lr: trial.with_lr(lr).build(model), step,
                                    batches, first.lr)
        choice.lr_test = result.to_dict()
        choice.reasons.append(f"LR range test on {first.optimizer}: {result.reason}")
        cands[0] = first.with_lr(result.suggestion)
        choice.lr = result.suggestion
        choice.candidates[0]["lr"] = result.suggestion
        return spent

    def _race(
        self, choice: Choice, cands: list[Candidate], left: int, model: nn.Module, step: StepFn,
        next_batch: Callable[[], Any], broadcast: Callable[[Any], Any],
    ) -> tuple[Choice, torch.optim.Optimizer, int]:
        """Race ``cands`` within ``left`` loser steps; return the final choice, its optimizer
        and the losers' steps."""
        labels = [c.label for c in cands]
        builders = {c.label: (lambda c=c: self._trial(choice, c).build(model)) for c in cands}
        book, winner, optimizer = run_race(model, labels, builders, step, next_batch,
                                           plan_race(len(cands), left))
        winner = broadcast(winner)
        choice.race = book.summary(winner)
        for row in choice.candidates:
            row["curve"] = choice.race["curves"].get(row["label"], [])
        if winner is None:
            won = cands[0].with_lr(cands[0].lr / 10)
            choice.reasons.append("every candidate diverged: the prior's first "
                                  f"choice at a 10x smaller lr ({won.lr:.3g})")
            optimizer = None
        else:
            won = next(c for c in cands if c.label == winner)
            kept = "the prior's first choice stays" if winner == labels[0] else \
                "clearly ahead of the prior's first choice"
            choice.reasons.append(f"race winner {winner} ({kept}); it keeps its "
                                  f"{len(book.curves[winner])} steps of progress")
        final = self._trial(choice, won)
        if optimizer is None:
            optimizer = final.build(model)
        final.groups = describe_groups(optimizer.param_groups)
        return final, optimizer, book.loser_steps(winner)
