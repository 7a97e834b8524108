"""AutoOptimizer: picks the optimizer, its parameter groups and its learning rate for the model.

How it plugs into ``Trainer.fit`` (Lightning 2.x order: setup -> callback state restore ->
``configure_optimizers`` -> ``on_fit_start`` -> optimizer state restore -> ``on_train_start``):

* the module's ``configure_optimizers`` is replaced on the instance when Lightning attaches the
  module to its callbacks (before it checks that the method exists, so a module without one
  works), so Lightning's own optimizer setup, precision plugin, strategy wrapping and checkpoint
  restore run unchanged on the optimizer we return. A user's ``configure_optimizers`` is still
  called; whatever it returns is replaced, with a message saying so;
* ``configure_optimizers`` inspects the model and the run, applies the family rules, picks the
  kernel by timing it, and returns the prior's first choice (or, on resume, rebuilds the
  checkpointed choice: no new search, and Lightning then restores its state);
* in ``"race"`` mode (and for an LR range test) the search runs at ``on_train_start`` on real
  batches; the winner's weights and optimizer state continue, and the optimizer object in
  ``trainer.optimizers`` is swapped for it (schedules re-read its ``"lr"`` as the peak).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.model_helpers import is_overridden

from lightning_optkit._trainer import record_decision
from lightning_optkit.callbacks._optimizer_search import run_search
from lightning_optkit.optim.choice import Choice, flat_hparams, format_choice
from lightning_optkit.optim.decide import (
    budget_steps,
    plan_candidates,
    resolve_mode,
    rules_choice,
    validate_settings,
)
from lightning_optkit.optim.factory import create_optimizer
from lightning_optkit.optim.groups import describe_groups
from lightning_optkit.optim.inspect import RunProfile, inspect_model
from lightning_optkit.optim.registry import get_optimizer_info
from lightning_optkit.optim.rules import Candidate
from lightning_optkit.optim.runner import measure_kernels

__all__ = ["AutoOptimizer"]

_MEASURE_LIMIT = 5_000_000  # above this many parameters the kernel is chosen without timing


class AutoOptimizer(Callback):
    """Choose the optimizer, parameter groups and learning rate for the model being fit.

    Args:
        mode: ``"rules"`` for an instant choice from evidence-based family priors; ``"race"`` to
            train a few candidates from the same weights on the same batches and keep the
            winner's progress; ``"auto"`` races when the run is long enough to afford it.
        candidates: Optimizer names to choose from, in order of preference (see
            ``lightning_optkit.optim.list_optimizers()``); ``None`` lets the rules propose them.
        lr: A fixed peak learning rate; ``None`` takes it from the rules (and the LR test).
        weight_decay: A fixed weight decay for the decayed group; ``None`` takes it from the rules.
        embedding_lr_mult: LR multiplier of the embedding group; ``None`` takes it from the rules.
        layer_decay: Layer-wise LR decay in (0, 1]; ``None`` disables it.
        budget: The most steps the race may spend on losing candidates: a fraction of the run's
            estimated steps (< 1, such as 0.05) or a number of steps (>= 1).
        lr_test: ``"auto"`` runs the LR range test when the prior LR is weak and a search is
            running; ``"always"`` or ``"never"``.
        kernel: ``"auto"`` times the fused, foreach and for-loop kernels on the real parameters
            and keeps the fastest; or force one.
        max_candidates: The most candidates the rules put in a race.
        explain_only: Print what would be chosen and why, and change nothing.
        save_json: Save the choice as ``auto_optimizer.json`` beside the logs.
        verbose: Print the choice at fit start (rank zero).
    """

    def __init__(
        self,
        mode: Literal["auto", "rules", "race"] = "auto",
        candidates: list[str] | None = None,
        lr: float | None = None,
        weight_decay: float | None = None,
        embedding_lr_mult: float | None = None,
        layer_decay: float | None = None,
        budget: float = 0.05,
        lr_test: Literal["auto", "always", "never"] = "auto",
        kernel: Literal["auto", "fused", "foreach", "for-loop"] = "auto",
        max_candidates: int = 3,
        explain_only: bool = False,
        save_json: bool = True,
        verbose: bool = True,
    ) -> None:
        validate_settings(mode=mode, candidates=candidates, lr=lr, weight_decay=weight_decay,
                          embedding_lr_mult=embedding_lr_mult, layer_decay=layer_decay,
                          budget=budget, lr_test=lr_test, kernel=kernel,
                          max_candidates=max_candidates)
        self.mode = mode
        self.candidates = list(candidates) if candidates is not None else None
        self.lr = lr
        self.weight_decay = weight_decay
        self.embedding_lr_mult = embedding_lr_mult
        self.layer_decay = layer_decay
        self.budget = budget
        self.lr_test = lr_test
        self.kernel = kernel
        self.max_candidates = max_candidates
        self.explain_only = explain_only
        self.save_json = save_json
        self.verbose = verbose
        self.choice: Choice | None = None
        self._restored: dict[str, Any] | None = None
        self._pending: list[Candidate] = []
        self._budget_steps: int | None = None
        self._module: pl.LightningModule | None = None
        self._announced = False
        self._want_test = False
        self._kernels: dict[str, str] = {}
        self._trainer: pl.Trainer | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_trainer", "_module", "_log", "log_dict"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_trainer", None)
        self.__dict__.setdefault("_module", None)

    # -- injection ---------------------------------------------------------------------------
    @property
    def log(self) -> Any:  # type: ignore[override]
        return self.__dict__.get("_log")

    @log.setter
    def log(self, fn: Any) -> None:
        # Lightning attaches ``module.log`` to every callback right before it checks that
        # ``configure_optimizers`` exists: the earliest point where the module is known.
        self.__dict__["_log"] = fn
        module = getattr(fn, "__self__", None)
        if isinstance(module, pl.LightningModule):
            self._install(module)

    def _install(self, module: pl.LightningModule) -> None:
        if self.explain_only or module.__dict__.get("_auto_optimizer_patch") is self:
            return
        original = module.configure_optimizers if is_overridden("configure_optimizers", module) else None

        def configure_optimizers() -> Any:
            return self._configure(module, original)

        module.__dict__["configure_optimizers"] = configure_optimizers
        module.__dict__["_auto_optimizer_patch"] = self
        self._module = module

    def _uninstall(self) -> None:
        if self._module is not None:
            self._module.__dict__.pop("configure_optimizers", None)
            self._module.__dict__.pop("_auto_optimizer_patch", None)
            self._module = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._trainer = trainer
        self._announced = False
        lazy = is_overridden("configure_model", pl_module)  # layers may appear after setup
        if not lazy and not any(p.requires_grad for p in pl_module.parameters()):
            raise ValueError("AutoOptimizer: the model has no trainable parameters (every "
                             "requires_grad is False); unfreeze some layers before fit")
        self._install(pl_module)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._uninstall()  # leave the module as it was (picklable), whatever the stage

    # -- the decision ------------------------------------------------------------------------
    def _run_profile(self, trainer: pl.Trainer) -> RunProfile:
        horizon = trainer.estimated_stepping_batches
        horizon = None if horizon is None or horizon == float("inf") else int(horizon)
        loader = trainer.train_dataloader
        batch = getattr(loader, "batch_size", None)
        return RunProfile(horizon=horizon, batch_size=batch, world_size=trainer.world_size,
                          device=trainer.strategy.root_device.type,
                          precision=str(trainer.precision))

    def _plan(self, trainer: pl.Trainer, module: pl.LightningModule) -> tuple[Choice, list[Candidate], str]:
        profile = inspect_model(module)
        if profile.num_params == 0:
            raise ValueError("AutoOptimizer: the model has no trainable parameters; unfreeze "
                             "some layers before fit")
        run = self._run_profile(trainer)
        family, cands, reasons = plan_candidates(
            profile, run, self.candidates, self.lr, self.weight_decay, self.embedding_lr_mult,
            self.layer_decay, self.max_candidates)
        if not cands:
            raise ValueError(f"candidates={self.candidates!r}: no installed optimizer left to "
                             "choose from; install an optional package or name torch optimizers")
        self._budget_steps = budget_steps(self.budget, run.horizon)
        mode = self.mode
        if mode != "rules" and not module.automatic_optimization:
            if mode == "race":
                raise ValueError("mode='race' needs automatic optimization; this module sets "
                                 "automatic_optimization=False: use mode='rules'")
            mode = "rules"
        mode, why = resolve_mode(mode, run.horizon, self._budget_steps, len(cands),
                                 profile.num_params)
        choice = rules_choice(family, cands, reasons + [why], profile, run, mode=mode)
        return choice, cands, mode

    def _pick_kernel(self, trainer: pl.Trainer, module: pl.LightningModule, choice: Choice,
                     names: list[str]) -> None:
        """Choose the kernel of every candidate optimizer; record the chosen one's timings."""
        self._kernels = {}
        if self.kernel != "auto":
            self._kernels = {n: self.kernel for n in names}
            choice.kernel = self.kernel
            choice.reasons.append(f"kernel fixed by the user: {self.kernel}")
            return
        t0 = time.perf_counter()
        params = [p for p in module.parameters() if p.requires_grad]
        large = sum(p.numel() for p in params) > _MEASURE_LIMIT
        all_times: dict[str, dict[str, float]] = {}
        for name in dict.fromkeys(names):
            info = get_optimizer_info(name)
            if large:
                kernel = "fused" if info.fused else "foreach" if info.foreach else "for-loop"
            else:
                times = measure_kernels(params, name, 1e-3, {})
                all_times[name] = times
                kernel = min(times, key=times.__getitem__) if times else "for-loop"
            self._kernels[name] = kernel
        self._kernels = trainer.strategy.broadcast(self._kernels)
        choice.kernel = self._kernels[choice.optimizer]
        times = all_times.get(choice.optimizer, {})
        choice.kernel_times_us = {k: round(v * 1e6, 1) for k, v in times.items()}
        how = f"fastest of {sorted(times)} timed on the real parameters" if times else \
            "the fastest available for a model this large (not timed)"
        choice.reasons.append(f"kernel {choice.kernel}: {how}")
        choice.overhead_seconds = round(time.perf_counter() - t0, 3)

    def _build(self, module: pl.LightningModule, choice: Choice) -> torch.optim.Optimizer:
        optimizer = create_optimizer(
            module, choice.optimizer, lr=choice.lr, weight_decay=choice.weight_decay,
            embedding_lr_mult=choice.embedding_lr_mult, layer_decay=choice.layer_decay,
            kernel=choice.kernel, **choice.hparams)
        choice.groups = describe_groups(optimizer.param_groups)
        if get_optimizer_info(choice.optimizer).needs_train_eval:
            optimizer.train()  # type: ignore[attr-defined]
        return optimizer

    def _candidate_choice(self, choice: Choice, c: Candidate) -> Choice:
        new = Choice.from_dict(choice.to_dict())
        new.optimizer, new.lr, new.weight_decay = c.optimizer, c.lr, c.weight_decay
        new.hparams, new.embedding_lr_mult = dict(c.hparams), c.embedding_lr_mult
        new.layer_decay = c.layer_decay
        new.kernel = self._kernels.get(c.optimizer, "auto")
        if c.optimizer != choice.optimizer:
            new.kernel_times_us = {}
        return new

    def _configure(self, module: pl.LightningModule, original: Any) -> Any:
        trainer = module.trainer
        replaced = None
        if original is not None:
            out = original()
            if isinstance(out, torch.optim.Optimizer):
                replaced = type(out).__name__
            elif out is not None:
                replaced = "its optimizers and schedulers; schedulers are dropped, use WarmupDecay"
        if self._restored is not None:
            self.choice = Choice.from_dict(self._restored)
            self.choice.reasons.append("restored from the checkpoint: no new search")
            self._pending, self._restored = [], None
            return self._build(module, self.choice)
        choice, cands, mode = self._plan(trainer, module)
        if replaced:
            choice.reasons.insert(0, f"configure_optimizers returned {replaced}; AutoOptimizer "
                                     "replaced it")
            self._print(f"AutoOptimizer: replacing the optimizer from configure_optimizers "
                        f"({replaced}) with its own choice")
        self._pick_kernel(trainer, module, choice, [c.optimizer for c in cands])
        want_test = self.lr_test == "always" or (
            self.lr_test == "auto" and mode == "race" and cands[0].lr_confidence == "weak"
            and self.lr is None and not get_optimizer_info(cands[0].optimizer).lr_free)
        self._pending = cands if (mode == "race" or want_test) else []
        self._want_test = want_test
        self.choice = choice
        return self._build(module, choice)

    # -- the search --------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.explain_only or self.choice is None:
            return
        if self._pending:
            run_search(self, trainer, pl_module)
        self._announce(trainer)

    # -- reporting and state -----------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.explain_only:
            return
        choice, cands, mode = self._plan(trainer, pl_module)
        current = [type(o).__name__ for o in trainer.optimizers]
        choice.reasons.append(f"explain_only: nothing changed; the run keeps {current or 'no optimizer'}")
        if mode == "race":
            choice.reasons.append(f"would race {[c.label for c in cands]} within "
                                  f"{self._budget_steps} loser steps")
        choice.groups = describe_groups(create_optimizer(
            pl_module, choice.optimizer, lr=choice.lr, weight_decay=choice.weight_decay,
            embedding_lr_mult=choice.embedding_lr_mult, layer_decay=choice.layer_decay,
            **choice.hparams).param_groups)
        self.choice = choice
        self._announce(trainer, applied=False)

    def _announce(self, trainer: pl.Trainer, applied: bool = True) -> None:
        if self._announced or self.choice is None:
            return
        self._announced = True
        data = self.choice.to_dict()
        data["applied"] = applied
        record_decision(trainer, "optimizer", data)
        self._print(format_choice(self.choice))
        directory = trainer.log_dir if self.save_json else None  # collective: all ranks call it
        if applied:
            for logger in trainer.loggers:
                logger.log_hyperparams(flat_hparams(self.choice))
        if directory:
            _write_json(os.path.join(directory, "auto_optimizer.json"), data)

    def _print(self, text: str) -> None:
        if self.verbose:
            _rank_zero_print(text)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._train_eval(trainer, "train")

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._train_eval(trainer, "eval")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.training:
            self._train_eval(trainer, "train")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._train_eval(trainer, "eval")

    def _train_eval(self, trainer: pl.Trainer, mode: str) -> None:
        if self.explain_only or self.choice is None:
            return
        if get_optimizer_info(self.choice.optimizer).needs_train_eval:
            for opt in trainer.optimizers:
                getattr(opt, mode)()

    def state_dict(self) -> dict[str, Any]:
        if self.choice is None or self.explain_only:
            return {}
        return {"choice": self.choice.to_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "choice" not in state_dict:
            return
        self._restored = dict(state_dict["choice"])
        if self.choice is not None and self._module is not None and self._trainer is not None:
            # strategies that restore after ``configure_optimizers``: rebuild the saved choice
            self.choice = Choice.from_dict(self._restored)
            self.choice.reasons.append("restored from the checkpoint: no new search")
            self._pending = []
            self._trainer.strategy.optimizers = [self._build(self._module, self.choice)]


@rank_zero_only
def _rank_zero_print(text: str) -> None:
    print(text, flush=True)


@rank_zero_only
def _write_json(path: str, data: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as fh:
        json.dump(data, fh, indent=2, default=str)
