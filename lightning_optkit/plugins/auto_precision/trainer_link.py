"""What ``AutoPrecision`` reads from the Trainer and writes back to it: ``TrainerLink``.

Lightning gives a precision plugin no Trainer: the plugin hands over ``module.trainer`` whenever a
hook sees one and the link keeps a weak reference. Everything the pure core needs from the run
(the number of processes, whether it fits, the rank gather) is read here, and everything the core
produces (the published decision, the probe's search phase, the metrics) is written here.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from lightning.pytorch.utilities.rank_zero import rank_zero_info

from lightning_optkit._trainer import current_search_phase, gather_rows, record_decision, set_search_phase
from lightning_optkit.precision.decision import Decision

__all__ = ["PROBE_PHASE", "TrainerLink"]

PROBE_PHASE = "precision_probe"
"""The search phase that marks the probe's steps (the profiler reports them apart)."""


class TrainerLink:
    """The plugin's weak link to the Trainer of the current run.

    Args:
        verbose: Print the decision once, on rank zero, when it is first published.
    """

    def __init__(self, verbose: bool = True) -> None:
        self.verbose = verbose
        self._ref: Callable[[], Any] | None = None
        self._announced = False
        self._phase_over = False

    # ------------------------------------------------------------------ reading
    @property
    def trainer(self) -> Any:
        """The Trainer, or ``None`` before a hook handed one over (or after it was collected)."""
        return None if self._ref is None else self._ref()

    def remember(self, trainer: Any) -> None:
        """Keep a weak reference to ``trainer`` (``None`` is ignored)."""
        if trainer is not None and self.trainer is not trainer:
            self._ref = weakref.ref(trainer)

    def world_size(self) -> int:
        """Number of processes of the run (1 without a distributed strategy)."""
        return int(getattr(self.trainer, "world_size", 1) or 1)

    def fitting(self) -> bool:
        """The Trainer runs ``fit`` (not validation, test or prediction alone)."""
        return getattr(getattr(self.trainer, "state", None), "fn", None) == "fit"

    def other_search_running(self) -> bool:
        """Another component's search (the optimizer race) is using the current steps."""
        return current_search_phase(self.trainer) not in (None, PROBE_PHASE)

    def gather(self, row: list[float]) -> list[list[float]]:
        """Every rank's ``row`` through the strategy's all-gather (the controller's ``gather``)."""
        return gather_rows(self.trainer.strategy, row)

    # ------------------------------------------------------------------ writing
    def publish(self, decision: Decision) -> None:
        """Print the decision once (rank zero), record it on the Trainer and log it as hyperparameters."""
        if self.verbose and not self._announced:
            rank_zero_info(decision.summary())
        self._announced = True
        trainer = self.trainer
        if trainer is None:
            return
        record_decision(trainer, "precision", decision.record())
        for logger in getattr(trainer, "loggers", None) or []:
            logger.log_hyperparams(decision.hparams())

    def start_probe_phase(self) -> None:
        """Mark the following steps as the probe's."""
        set_search_phase(self.trainer, PROBE_PHASE)

    def probe_phase_over(self) -> None:
        """The probe chose: its phase ends when the next batch arrives (after this batch's hooks)."""
        self._phase_over = True

    def end_probe_phase(self) -> None:
        """End the probe's phase if it is over (never another component's search)."""
        trainer = self.trainer
        if not self._phase_over or trainer is None:
            return
        self._phase_over = False
        if current_search_phase(trainer) == PROBE_PHASE:
            set_search_phase(trainer, None)

    def log_due(self) -> bool:
        """This step is a logging step (every ``log_every_n_steps``) and the Trainer has loggers."""
        trainer = self.trainer
        every = getattr(trainer, "log_every_n_steps", 0)
        if not every or not getattr(trainer, "loggers", None):
            return False
        return (int(trainer.global_step) + 1) % every == 0  # global_step grows after this step

    def log_metrics(self, metrics: dict[str, float]) -> None:
        """Log ``metrics`` at this step to every logger."""
        trainer = self.trainer
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=int(trainer.global_step))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_ref": None}
