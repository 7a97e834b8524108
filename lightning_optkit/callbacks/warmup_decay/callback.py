"""``WarmupDecay``: warm-up + decay learning-rate schedules as a Lightning callback.

The schedule math lives in :mod:`lightning_optkit.schedules` (:class:`~lightning_optkit.schedules.plan.SchedulePlan`
is what the user asked for); this module only reads the trainer's state, asks each
:class:`~lightning_optkit.callbacks.warmup_decay.driven.DrivenOptimizer` for the LRs of the current
step and lets it write them into the param groups right before each optimizer update.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Literal, Optional, Union

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from typing_extensions import override

from lightning_optkit._checks import as_choice, as_int, fail
from lightning_optkit._files import check_writable
from lightning_optkit._trainer import record_decision, skipped_updates
from lightning_optkit.callbacks.warmup_decay.driven import DrivenOptimizer
from lightning_optkit.callbacks.warmup_decay.report import LRHistory, format_schedule, trap_warnings
from lightning_optkit.schedules.plan import SchedulePlan
from lightning_optkit.schedules.spec import ScheduleSpec

__all__ = ["WarmupDecay"]


class WarmupDecay(Callback):
    r"""Warm-up then decay the learning rate of every param group, driven by the optimizer steps.

    Right before each optimizer update the callback sets ``lr = base_lr * schedule(step)`` in
    every param group, where ``step`` is the number of updates made so far (``trainer.global_step``,
    or each optimizer's own count when several optimizers step under manual optimization). It keeps
    no counter of its own, so gradient accumulation and resuming mid-warm-up are exact.

    Args:
        warmup: Warm-up length: optimizer steps (``500``), a fraction of the total (``0.05``), a
            string ``"500st"``, ``"3ep"``, ``"5%"``, or ``"auto"`` for ``2 / (1 - beta2)`` steps of
            Adam-type optimizers.
        total: Schedule length, in the same units; ``None`` uses the trainer's horizon (max_steps,
            max_epochs, limit_train_batches and gradient accumulation included). A fraction is a
            share of that horizon. After it, the LR holds the floor.
        decay: Decay shape: constant, linear, cosine, cosine_restarts, polynomial, exponential,
            step, inverse_sqrt or wsd.
        warmup_shape: Warm-up shape: linear, exponential, cosine or constant.
        warmup_start: Multiplier the warm-up starts from (``None``: the shape's default, above 0).
        min_lr_ratio: Floor as a share of each group's own base LR, in [0, 1].
        compat: ``"default"``, or ``"hf"`` / ``"timm"`` to reproduce those libraries' values.
        options: Extra options of the decay shape, e.g. ``{"num_cycles": 3}`` or
            ``{"decay_fraction": 0.2, "decay_shape": "1-sqrt"}`` for wsd.
        groups: Per-group overrides keyed by group ``name`` or index (``"1"``, or ``"0/1"`` for
            optimizer 0, group 1): a dict with any of warmup, decay, warmup_shape, warmup_start,
            min_lr_ratio, options.
        count: ``"all"`` counts every update; ``"applied"`` counts only updates that were applied,
            so steps skipped by a gradient scaler (inf/nan) do not advance the schedule.
        scale_weight_decay: Scale each group's weight decay by the same multiplier as its LR.
        horizon_change: On resume with another horizon, ``"continue"`` keeps the old curve and
            ``"stretch"`` rebuilds it for the new horizon (the LR may jump at the resume step).
        optimizers: Indices of the optimizers to drive (``None``: all).
        late_group_warmup: Warm-up of param groups added during training (unfreezing), counted
            from the step they appear; ``None`` uses the group's warm-up.
        log_lr: Log the LR set, as ``lr-<Optimizer>[/<group>]``, through the trainer's loggers.
        logging_interval: Log every this many updates (``None``: ``trainer.log_every_n_steps``).
        verbose: Print the resolved schedule at fit start (rank zero).
        plot_path: If set, write a PNG of the LR curve actually used at fit end (needs matplotlib);
            an existing folder (or a path ending in ``/``) gets ``lr_curve.png`` inside it. Checked
            at setup: a path that cannot be written fails before training.

    Example::

        trainer = Trainer(max_epochs=10, callbacks=[WarmupDecay(warmup="5%", min_lr_ratio=0.1)])
    """

    def __init__(
        self,
        warmup: Union[int, float, str] = 0.05,
        total: Union[int, float, str, None] = None,
        decay: str = "cosine",
        warmup_shape: str = "linear",
        warmup_start: Optional[float] = None,
        min_lr_ratio: float = 0.0,
        compat: Literal["default", "hf", "timm"] = "default",
        options: Optional[dict[str, Any]] = None,
        groups: Optional[dict[str, dict[str, Any]]] = None,
        count: Literal["all", "applied"] = "all",
        scale_weight_decay: bool = False,
        horizon_change: Literal["continue", "stretch"] = "continue",
        optimizers: Optional[list[int]] = None,
        late_group_warmup: Union[int, float, str, None] = None,
        log_lr: bool = True,
        logging_interval: Optional[int] = None,
        verbose: bool = True,
        plot_path: Optional[str] = None,
    ) -> None:
        super().__init__()
        spec = ScheduleSpec.create(warmup=warmup, decay=decay, warmup_shape=warmup_shape, warmup_start=warmup_start,
                                   min_lr_ratio=min_lr_ratio, compat=compat, options=options)
        self.plan = SchedulePlan.create(spec, total=total, groups=groups, late_group_warmup=late_group_warmup)
        self.count = as_choice("count", count, ("all", "applied"))
        self.horizon_change = as_choice("horizon_change", horizon_change, ("continue", "stretch"))
        if optimizers is not None and not isinstance(optimizers, (list, tuple)):
            raise fail("optimizers", optimizers, "expected a list of optimizer indices", "pass e.g. optimizers=[0]")
        self.optimizer_indices = None if optimizers is None else [
            as_int(f"optimizers[{k}]", i, minimum=0, example=0) for k, i in enumerate(optimizers)
        ]
        self.logging_interval = None if logging_interval is None else as_int(
            "logging_interval", logging_interval, minimum=1, example=50)
        self.scale_weight_decay = scale_weight_decay
        self.log_lr = log_lr
        self.verbose = verbose
        self.plot_path = plot_path
        self._history = LRHistory()  # the LRs of the first driven optimizer, for the plot
        self._driven: list[DrivenOptimizer] = []
        self._saved: dict[str, Any] = {}
        self._steps_per_epoch: Optional[int] = None
        self._horizon: Optional[int] = None
        self._plot_file: Optional[str] = None  # plot_path checked and resolved at setup
        self.warmup_default_of: Optional[str] = None  # set by OptKit when it chose the warm-up

    @property
    def spec(self) -> ScheduleSpec:
        """The schedule of every param group without an override."""
        return self.plan.spec

    @property
    def group_specs(self) -> dict[str, ScheduleSpec]:
        """The per-group overrides, by key."""
        return dict(self.plan.groups)

    @property
    def history(self) -> list[tuple[int, list[float]]]:
        """``(step, [lr of each group])`` of the first driven optimizer, thinned to constant memory."""
        return self._history.points

    # ------------------------------------------------------------------ checkpoint
    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "totals": {str(d.index): d.total for d in self._driven},
            "base_lrs": {str(d.index): list(d.base_lrs) for d in self._driven},
            "base_wds": {str(d.index): list(d.base_wds) for d in self._driven},
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._saved = dict(state_dict)

    # ------------------------------------------------------------------ hooks
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._plot_file = None
        if stage != "fit" or not self.plot_path:
            return
        path = os.fspath(self.plot_path)
        if os.path.isdir(path) or path.endswith(("/", os.sep)):
            path = os.path.join(path, "lr_curve.png")
        problem = check_writable(os.path.dirname(os.path.abspath(path))) if trainer.is_global_zero else None
        if problem is None and os.path.isdir(path):
            problem = "it is a folder"
        if problem is not None:
            raise MisconfigurationException(
                f"WarmupDecay: plot_path={self.plot_path!r} cannot be written ({problem}). Pass a writable"
                " file path such as plot_path='runs/lr_curve.png', or plot_path=None for no plot."
            )
        self._plot_file = path

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._driven, self._history = [], LRHistory()
        horizon = trainer.estimated_stepping_batches
        batches = trainer.num_training_batches
        self._steps_per_epoch = (
            None if batches is None or math.isinf(batches)
            else max(1, math.ceil(batches / max(1, trainer.accumulate_grad_batches)))
        )
        self._horizon = None if horizon in (None, -1) or math.isinf(horizon) else int(horizon)
        quick = bool(trainer.fast_dev_run)  # a smoke test of a step or a few: no schedule advice
        try:
            with warnings.catch_warnings():
                if quick:
                    warnings.filterwarnings("ignore", message=r".*warmup.*", category=UserWarning)
                for index in self._indices(trainer):
                    self._driven.append(self._drive(index, trainer.optimizers[index]))
        except ValueError as err:
            raise MisconfigurationException(f"WarmupDecay: {self._explain(err)}") from None
        unmatched = self.plan.unmatched(g.key for d in self._driven for g in d.groups)
        if unmatched:
            names = [f"{d.index}/{j} ({n})" for d in self._driven for j, n in enumerate(d.names)]
            raise MisconfigurationException(
                f"WarmupDecay: groups={unmatched} match no param group; the groups are"
                f" {', '.join(names)}. Key overrides by group name, by index ('1') or as"
                " 'optimizer/group' ('0/1')."
            )
        limit = (f"max_steps={trainer.max_steps}" if trainer.max_steps not in (None, -1) and
                 trainer.max_steps == self._horizon else f"max_epochs={trainer.max_epochs}")
        for message in trap_warnings(self._driven, trainer.lr_scheduler_configs or [], self._horizon, limit=limit):
            if not (quick and "holds the floor" in message):
                rank_zero_warn(f"WarmupDecay: {message}")
        rows = [row for d in self._driven for row in d.rows()]
        record_decision(trainer, "schedule", {"groups": rows, "count": self.count})
        if self.verbose:
            rank_zero_info(format_schedule(rows))

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if pl_module.automatic_optimization and self._driven:
            self._refresh(trainer)
            for driven in self._driven:
                driven.apply(self._step_of(trainer, driven), scale_weight_decay=self.scale_weight_decay)

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        self._refresh(trainer)
        for driven in self._driven:
            if driven.optimizer is optimizer:
                step = self._step_of(trainer, driven)
                lrs = driven.apply(step, scale_weight_decay=self.scale_weight_decay)
                if driven.first_log_of(step):
                    self._record(trainer, driven, step, lrs)
                if len(self._driven) > 1 or len(trainer.optimizers) > 1:
                    driven.count_attempt()
                return

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        path = self._plot_file or (self.plot_path and os.fspath(self.plot_path))
        if path and trainer.is_global_zero and self.history:
            from lightning_optkit.schedules.plot import plot_lr_curves

            names = self._driven[0].names if self._driven else []
            plot_lr_curves(self.history, names, path, title="Learning rate used")

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for driven in self._driven:
            driven.release()

    def preview(
        self,
        total_steps: Optional[int] = None,
        *,
        steps_per_epoch: Optional[int] = None,
        base_lrs: Optional[list[float]] = None,
        names: Optional[list[str]] = None,
        beta2: float = 0.999,
        path: Optional[str] = None,
        max_rows: int = 200,
    ) -> list[dict[str, float]]:
        """The LRs this callback would set, without training; optionally a PNG of the curves.

        Args:
            total_steps: The trainer's horizon in optimizer steps (needed unless ``total`` is
                given in steps).
            steps_per_epoch: Optimizer steps per epoch, for durations in epochs.
            base_lrs: Base LRs of the groups to show (default one group at 1.0: multipliers).
            names: Names of those groups (per-group overrides apply by name or index).
            beta2: The optimizer's beta2, for ``warmup="auto"``.
            path: Write a PNG of the curves there (needs matplotlib).
            max_rows: About how many rows the table has.
        """
        return self.plan.preview(total_steps, steps_per_epoch=steps_per_epoch, base_lrs=base_lrs, names=names,
                                 beta2=beta2, path=path, max_rows=max_rows)

    # ------------------------------------------------------------------ internals
    def _explain(self, err: ValueError) -> str:
        """The error, saying so when the warm-up that cannot be resolved is a default the user never set."""
        text = str(err)
        marker = f"warmup={self.spec.warmup} is a share of the run's length"
        if self.warmup_default_of and marker in text:
            where = text[:text.index(marker)]
            owner = self.warmup_default_of
            text = (f"{where}the warm-up {self.spec.warmup} is {owner}'s default, a share of the run's"
                    " length, which is unknown here (an iterable data set has no length, so max_epochs"
                    f" gives no step count). Set Trainer(max_steps=...), or give the warm-up in steps:"
                    f" {owner}(schedule={{'warmup': 500}})")
        return text

    def _indices(self, trainer: pl.Trainer) -> list[int]:
        count = len(trainer.optimizers)
        if self.optimizer_indices is None:
            return list(range(count))
        bad = [i for i in self.optimizer_indices if i >= count]
        if bad:
            raise ValueError(
                f"optimizers={self.optimizer_indices!r} names {bad}, but the model has {count}"
                f" optimizer(s): use indices below {count}"
            )
        return list(self.optimizer_indices)

    def _total_for(self, index: int) -> Optional[int]:
        total = self.plan.total_steps(horizon=self._horizon, steps_per_epoch=self._steps_per_epoch)
        saved = self._saved.get("totals", {}).get(str(index))
        if saved is not None and total is not None and saved != total:
            if self.horizon_change == "continue":
                rank_zero_warn(
                    f"WarmupDecay: the horizon changed from {saved} to {total} steps on resume;"
                    " continuing the old curve (horizon_change='continue'). Set"
                    " horizon_change='stretch' to rebuild it for the new horizon."
                )
                return saved
            rank_zero_info(f"WarmupDecay: stretching the schedule from {saved} to {total} steps.")
        return total if total is not None else saved

    def _drive(self, index: int, optimizer: torch.optim.Optimizer) -> DrivenOptimizer:
        driven = DrivenOptimizer(index=index, optimizer=optimizer, total=self._total_for(index))
        driven.add_groups(
            self.plan, steps_per_epoch=self._steps_per_epoch,
            saved_lrs=self._saved.get("base_lrs", {}).get(str(index), []),
            saved_wds=self._saved.get("base_wds", {}).get(str(index), []),
        )
        if self.count == "applied":
            driven.count_applied_updates()
        return driven

    def _refresh(self, trainer: pl.Trainer) -> None:
        """Pick up optimizers replaced after fit start and param groups added during training."""
        replaced = False
        for k, driven in enumerate(self._driven):
            current = trainer.optimizers[driven.index] if driven.index < len(trainer.optimizers) else None
            if current is not None and current is not driven.optimizer:
                driven.release()
                self._driven[k] = driven = self._drive(driven.index, current)
                replaced = True
            if len(driven.optimizer.param_groups) > len(driven.groups):
                driven.add_groups(self.plan, steps_per_epoch=self._steps_per_epoch,
                                  start=self._step_of(trainer, driven))
        if replaced:  # the recorded schedule names the peaks of the optimizer that now trains
            rows = [row for d in self._driven for row in d.rows()]
            record_decision(trainer, "schedule", {"groups": rows, "count": self.count})

    def _step_of(self, trainer: pl.Trainer, driven: DrivenOptimizer) -> int:
        several = len(trainer.optimizers) > 1
        skipped = skipped_updates(trainer) if self.count == "applied" and not several else None
        return driven.step_of(global_step=trainer.global_step, count=self.count, several=several, skipped=skipped)

    def _record(self, trainer: pl.Trainer, driven: DrivenOptimizer, step: int, lrs: list[float]) -> None:
        if driven is self._driven[0]:
            self._history.add(step, lrs)
        interval = self.logging_interval or trainer.log_every_n_steps
        if self.log_lr and trainer.loggers and step % max(1, interval) == 0:
            numbered = sum(type(d.optimizer) is type(driven.optimizer) for d in self._driven) > 1
            metrics = driven.metrics(lrs, numbered=numbered, with_wd=self.scale_weight_decay)
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
