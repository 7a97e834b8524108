"""``WarmupDecay``: warm-up + decay learning-rate schedules as a Lightning callback.

The schedule math lives in :mod:`lightning_optkit.schedules` and :mod:`lightning_optkit.schedule_plan`;
this module only reads the trainer's state, asks the schedule for a multiplier and writes
``base_lr * multiplier`` into each param group right before each optimizer update.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional, Union

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lightning_optkit._trainer import record_decision, skipped_updates
from lightning_optkit.callbacks._warmup_decay_report import (
    _APPLIED,
    _Driven,
    check_choice,
    count_applied,
    format_schedule,
    lr_metrics,
    preview_curves,
    schedule_rows,
    trap_warnings,
)
from lightning_optkit.durations import parse_duration
from lightning_optkit.schedule_plan import ScheduleSpec, late_group_factor, resolve_schedule, resolve_total

__all__ = ["WarmupDecay"]

_ATTEMPTS = "optkit_updates"  # the optimizer's own count of updates (several optimizers)
_START = "optkit_start_step"  # the step at which a param group joined
_HISTORY_POINTS = 4096


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
        plot_path: If set, write a PNG of the LR curve actually used at fit end (needs matplotlib).

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
        self.spec = ScheduleSpec.create(
            warmup=warmup, decay=decay, warmup_shape=warmup_shape, warmup_start=warmup_start,
            min_lr_ratio=min_lr_ratio, compat=compat, options=options,
        )
        self.total = None if total is None else parse_duration(total, name="total")
        if self.total is not None and self.total.unit == "steps" and self.total.value < 1:
            raise ValueError(f"total={total!r} must be at least 1 optimizer step")
        if (
            self.total is not None and self.total.unit == "steps"
            and not isinstance(self.spec.warmup, str) and self.spec.warmup.unit == "steps"
            and self.spec.warmup.value > self.total.value
        ):
            raise ValueError(
                f"warmup={warmup!r} is longer than total={total!r}; use a warm-up shorter than the"
                " schedule, or a share such as '5%'"
            )
        self.group_specs = {
            str(key): self.spec.with_overrides(value, where=f"groups[{key!r}]")
            for key, value in (groups or {}).items()
        }
        check_choice("count", count, ("all", "applied"))
        check_choice("horizon_change", horizon_change, ("continue", "stretch"))
        if optimizers is not None and any(not isinstance(i, int) or i < 0 for i in optimizers):
            raise ValueError(f"optimizers={optimizers!r} must be a list of optimizer indices >= 0")
        if logging_interval is not None and logging_interval < 1:
            raise ValueError(f"logging_interval={logging_interval!r} must be >= 1 (or None)")
        self.late_group_warmup = (
            None if late_group_warmup is None
            else parse_duration(late_group_warmup, name="late_group_warmup")
        )
        self.count = count
        self.scale_weight_decay = scale_weight_decay
        self.horizon_change = horizon_change
        self.optimizer_indices = optimizers
        self.log_lr = log_lr
        self.logging_interval = logging_interval
        self.verbose = verbose
        self.plot_path = plot_path
        self.history: list[tuple[int, list[float]]] = []  # (step, LRs) of the first optimizer
        self._history_every = 1
        self._driven: list[_Driven] = []
        self._matched: set[str] = set()
        self._saved: dict[str, Any] = {}
        self._steps_per_epoch: Optional[int] = None
        self._horizon: Optional[int] = None

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "totals": {str(d.index): d.total for d in self._driven},
            "base_lrs": {str(d.index): list(d.base_lrs) for d in self._driven},
            "base_wds": {str(d.index): list(d.base_wds) for d in self._driven},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._saved = dict(state_dict)

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._driven, self._matched = [], set()
        self.history, self._history_every = [], 1
        horizon = trainer.estimated_stepping_batches
        batches = trainer.num_training_batches
        self._steps_per_epoch = (
            None if batches is None or math.isinf(batches)
            else max(1, math.ceil(batches / max(1, trainer.accumulate_grad_batches)))
        )
        self._horizon = None if horizon in (None, -1) or math.isinf(horizon) else int(horizon)
        try:
            for index in self._indices(trainer):
                self._driven.append(self._drive(trainer, index, trainer.optimizers[index]))
        except ValueError as err:
            raise MisconfigurationException(f"WarmupDecay: {err}") from None
        unmatched = sorted(set(self.group_specs) - self._matched)
        if unmatched:
            names = [f"{d.index}/{j} ({n})" for d in self._driven for j, n in enumerate(d.names)]
            raise MisconfigurationException(
                f"WarmupDecay: groups={unmatched} match no param group; the groups are"
                f" {', '.join(names)}. Key overrides by group name, by index ('1') or as"
                " 'optimizer/group' ('0/1')."
            )
        self._warn_traps(trainer)
        self._announce(trainer)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if pl_module.automatic_optimization and self._driven:
            self._refresh(trainer)
            for driven in self._driven:
                self._apply(trainer, driven, log=False)

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        self._refresh(trainer)
        for driven in self._driven:
            if driven.optimizer is optimizer:
                self._apply(trainer, driven, log=True)
                if len(self._driven) > 1 or len(trainer.optimizers) > 1:
                    group = optimizer.param_groups[0]
                    group[_ATTEMPTS] = group.get(_ATTEMPTS, 0) + 1
                return

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.plot_path and trainer.is_global_zero and self.history:
            from lightning_optkit.plots import plot_lr_curves

            names = self._driven[0].names if self._driven else []
            plot_lr_curves(self.history, names, self.plot_path, title="Learning rate used")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for driven in self._driven:
            if driven.hook is not None:
                driven.hook.remove()
                driven.hook = None

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
        bases = list(base_lrs or [1.0])
        labels = list(names or [f"pg{j + 1}" for j in range(len(bases))])
        total = resolve_total(self.total, horizon=total_steps, steps_per_epoch=steps_per_epoch)
        if total is None:
            raise ValueError("preview needs total_steps (or WarmupDecay(total=<steps>)) to know the horizon")
        self._matched = set()
        specs = [self._spec_for(0, j, name) for j, name in enumerate(labels)]
        return preview_curves(specs, bases, labels, total=total, steps_per_epoch=steps_per_epoch,
                              beta2=beta2, path=path, max_rows=max_rows)

    # ------------------------------------------------------------------ internals
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
        total = resolve_total(self.total, horizon=self._horizon, steps_per_epoch=self._steps_per_epoch)
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

    def _drive(self, trainer: pl.Trainer, index: int, optimizer: torch.optim.Optimizer) -> _Driven:
        driven = _Driven(index=index, optimizer=optimizer, total=self._total_for(index))
        saved_lrs = self._saved.get("base_lrs", {}).get(str(index), [])
        saved_wds = self._saved.get("base_wds", {}).get(str(index), [])
        for j, group in enumerate(optimizer.param_groups):
            self._add_group(driven, j, group, saved_lrs, saved_wds, start=0)
        if self.count == "applied":
            driven.hook = optimizer.register_step_post_hook(count_applied)
        return driven

    def _add_group(self, driven: _Driven, j: int, group: dict, saved_lrs: list, saved_wds: list,
                   start: int) -> None:
        name = str(group.get("name", f"pg{j + 1}"))
        base = group.get("initial_lr", saved_lrs[j] if j < len(saved_lrs) else group["lr"])
        group.setdefault("initial_lr", base)
        group.setdefault(_START, start)
        spec = self._spec_for(driven.index, j, name)
        betas = group.get("betas")
        beta2 = float(betas[1]) if isinstance(betas, (tuple, list)) and len(betas) > 1 else None
        where = f"optimizer {driven.index}, group {name!r}: "
        defaults = None
        if spec.compat == "hf" and spec.decay == "polynomial":  # transformers reads defaults["lr"]
            defaults = {"lr_init": driven.optimizer.defaults.get("lr", base)}
        schedule, warmup = resolve_schedule(
            spec, total=driven.total, steps_per_epoch=self._steps_per_epoch, beta2=beta2, where=where,
            defaults=defaults,
        )
        if group[_START] > 0 and self.late_group_warmup is not None:
            from lightning_optkit.durations import resolve_duration

            warmup = resolve_duration(
                self.late_group_warmup, total=driven.total, steps_per_epoch=self._steps_per_epoch,
                name="late_group_warmup",
            )
        driven.names.append(name)
        driven.base_lrs.append(float(base))
        wd = group.get("weight_decay", 0.0)
        driven.base_wds.append(float(saved_wds[j] if j < len(saved_wds) else wd))
        driven.schedules.append(schedule)
        driven.warmups.append(warmup)

    def _spec_for(self, index: int, j: int, name: str) -> ScheduleSpec:
        for key in (name, f"{index}/{j}", f"{index}/{name}", str(j) if index == 0 else None):
            if key is not None and key in self.group_specs:
                self._matched.add(key)
                return self.group_specs[key]
        return self.spec

    def _refresh(self, trainer: pl.Trainer) -> None:
        """Pick up optimizers replaced after fit start and param groups added during training."""
        replaced = False
        for k, driven in enumerate(self._driven):
            current = trainer.optimizers[driven.index] if driven.index < len(trainer.optimizers) else None
            if current is not None and current is not driven.optimizer:
                if driven.hook is not None:
                    driven.hook.remove()
                self._driven[k] = driven = self._drive(trainer, driven.index, current)
                replaced = True
            groups = driven.optimizer.param_groups
            if len(groups) > len(driven.base_lrs):
                step = self._step_of(trainer, driven)
                for j in range(len(driven.base_lrs), len(groups)):
                    self._add_group(driven, j, groups[j], [], [], start=step)
        if replaced:  # the recorded schedule names the peaks of the optimizer that now trains
            record_decision(trainer, "schedule", {"groups": schedule_rows(self._driven),
                                                  "count": self.count})

    def _step_of(self, trainer: pl.Trainer, driven: _Driven) -> int:
        first = driven.optimizer.param_groups[0]
        several = len(trainer.optimizers) > 1
        if self.count == "applied":
            skipped = None if several else skipped_updates(trainer)
            if skipped is not None:
                return trainer.global_step - skipped
            return int(first.get(_APPLIED, 0))
        return int(first.get(_ATTEMPTS, 0)) if several else trainer.global_step

    def _apply(self, trainer: pl.Trainer, driven: _Driven, log: bool) -> None:
        step = self._step_of(trainer, driven)
        groups = driven.optimizer.param_groups
        if step != driven.last_step or len(driven.lrs) != len(groups):
            driven.lrs, driven.wds = [], []
            for j, group in enumerate(groups):
                factor = driven.schedules[j](step)
                start = group.get(_START, 0)
                if start > 0:
                    factor *= late_group_factor(step, start=start, warmup=driven.warmups[j])
                driven.lrs.append(driven.base_lrs[j] * factor)
                driven.wds.append(driven.base_wds[j] * factor)
            driven.last_step = step
        # (re)write the values right before the update, even if computed at batch start
        for j, group in enumerate(groups):
            group["lr"] = driven.lrs[j]
            if self.scale_weight_decay and "weight_decay" in group:
                group["weight_decay"] = driven.wds[j]
        if log and step != driven.last_logged:
            driven.last_logged = step
            self._record(trainer, driven, step, driven.lrs)

    def _record(self, trainer: pl.Trainer, driven: _Driven, step: int, lrs: list[float]) -> None:
        if driven is self._driven[0] and step % self._history_every == 0:
            self.history.append((step, lrs))
            if len(self.history) >= _HISTORY_POINTS:  # keep memory constant: drop every other point
                self.history = self.history[::2]
                self._history_every *= 2
        interval = self.logging_interval or trainer.log_every_n_steps
        if self.log_lr and trainer.loggers and step % max(1, interval) == 0:
            metrics = lr_metrics(self._driven, driven, lrs, with_wd=self.scale_weight_decay)
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)

    def _warn_traps(self, trainer: pl.Trainer) -> None:
        for message in trap_warnings(self._driven, trainer):
            rank_zero_warn(f"WarmupDecay: {message}")

    def _announce(self, trainer: pl.Trainer) -> None:
        rows = schedule_rows(self._driven)
        record_decision(trainer, "schedule", {"groups": rows, "count": self.count})
        if self.verbose:
            rank_zero_info(format_schedule(rows))
