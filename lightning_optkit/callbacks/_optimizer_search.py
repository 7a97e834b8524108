"""The optimizer searches of ``AutoOptimizer`` at ``on_train_start``: LR range test, then race.

Both run on real training batches (see ``_search_steps``), under the ``"optimizer_race"`` search
phase, and leave the model either restored (LR test) or holding the winner's weights (race). The
optimizer in ``trainer.optimizers`` is swapped for the final one; the cost is recorded in the
choice (``overhead_steps``: steps that did not become progress, ``overhead_seconds``).
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl

from lightning_optkit._trainer import search_phase
from lightning_optkit.callbacks._search_steps import batch_source, make_step, reset_metrics
from lightning_optkit.optim.choice import Choice
from lightning_optkit.optim.groups import describe_groups
from lightning_optkit.optim.race import plan_race
from lightning_optkit.optim.runner import run_lr_test, run_race

__all__ = ["run_search"]


def _with_lr(choice: Choice, lr: float) -> Choice:
    new = Choice.from_dict(choice.to_dict())
    new.lr = lr
    return new


def run_search(self: Any, trainer: pl.Trainer, module: pl.LightningModule) -> None:
    """Run the pending LR test and race of ``AutoOptimizer`` ``self`` on real batches."""
    if self.choice is None:
        return
    cands, self._pending = list(self._pending), []
    choice = self.choice
    t0 = time.perf_counter()
    with search_phase(trainer, "optimizer_race"):  # restores any search that was running
        try:
            step = make_step(trainer, module)
            next_batch = batch_source(trainer)
            budget = self._budget_steps or 0
            spent = 0
            if self._want_test:
                first = cands[0]
                n = max(8, min(40, budget // 3 if choice.mode == "race" else 40))
                batches = [next_batch() for _ in range(n)]
                trial = self._candidate_choice(choice, first)
                result, spent = run_lr_test(
                    module, lambda lr: self._build(module, _with_lr(trial, lr)), step, batches, first.lr)
                choice.lr_test = result.to_dict()
                choice.reasons.append(f"LR range test on {first.optimizer}: {result.reason}")
                cands[0] = first.with_lr(result.suggestion)
                choice.lr = result.suggestion
                choice.candidates[0]["lr"] = result.suggestion
            if choice.mode == "race":
                left = budget - spent
                plan = plan_race(len(cands), left) if left // max(1, len(cands) - 1) >= 8 else None
                if plan is None:
                    choice.reasons.append("LR test used the budget: no race")
                else:
                    labels = [c.label for c in cands]
                    builders = {c.label: (lambda c=c: self._build(module, self._candidate_choice(choice, c)))
                                for c in cands}
                    book, winner, optimizer = run_race(module, labels, builders, step, next_batch, plan)
                    winner = trainer.strategy.broadcast(winner)
                    spent += book.loser_steps(winner)
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
                    final = self._candidate_choice(choice, won)
                    if optimizer is None:
                        optimizer = self._build(module, final)
                    final.groups = describe_groups(optimizer.param_groups)
                    self.choice = choice = final
                    trainer.strategy.optimizers = [optimizer]
            if choice.lr_test is not None and choice.race is None:
                trainer.strategy.optimizers = [self._build(module, choice)]
            choice.overhead_steps = spent
        finally:
            reset_metrics(module)
    spent_seconds = time.perf_counter() - t0
    self.choice.overhead_seconds = round(self.choice.overhead_seconds + spent_seconds, 3)
