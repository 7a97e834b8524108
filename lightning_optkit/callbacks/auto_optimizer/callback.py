"""AutoOptimizer: picks the optimizer, its parameter groups and its learning rate for the model.

How it plugs into ``Trainer.fit`` (Lightning 2.x order: setup -> callback state restore ->
``configure_optimizers`` -> ``on_fit_start`` -> optimizer state restore -> ``on_train_start``):

* the module's ``configure_optimizers`` is replaced on the instance when Lightning attaches the
  module to its callbacks (before it checks that the method exists, so a module without one
  works), so Lightning's own optimizer setup, precision plugin, strategy wrapping and checkpoint
  restore run unchanged on the optimizer we return. A user's ``configure_optimizers`` is still
  called; what it returns is kept (the choice is only reported) unless
  ``replace_user_optimizer=True``, which replaces one optimizer with one warning; several
  optimizers or manual optimization are always kept;
* ``configure_optimizers`` inspects the model and the run, applies the family rules, picks the
  kernel by timing it, and returns the prior's first choice (or, on resume, rebuilds the
  checkpointed choice: no new search, and Lightning then restores its state);
* in ``"race"`` mode (and for an LR range test) the search runs at ``on_train_start`` on real
  batches; the winner's weights and optimizer state continue, and the optimizer object in
  ``trainer.optimizers`` is swapped for it (schedules re-read its ``"lr"`` as the peak).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Union

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.core.optimizer import _configure_optimizers
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.model_helpers import is_overridden
from typing_extensions import override

from lightning_optkit._checks import fail
from lightning_optkit._files import write_json_atomic
from lightning_optkit._trainer import record_decision, search_phase
from lightning_optkit.callbacks.auto_optimizer.search import OptimizerSearch
from lightning_optkit.callbacks.auto_optimizer.steps import batch_source, make_step, reset_metrics
from lightning_optkit.optim.choice import Choice, flat_hparams, format_choice
from lightning_optkit.optim.decide import Plan, make_plan
from lightning_optkit.optim.inspect import RunProfile, inspect_model
from lightning_optkit.optim.registry import get_optimizer_info
from lightning_optkit.optim.runner import choose_kernels
from lightning_optkit.optim.settings import Kernel, LRTest, Mode, OptimizerSettings

__all__ = ["AutoOptimizer"]


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
            estimated steps (< 1, such as 0.05, or a share such as ``"5%"``) or a number of
            steps (>= 1).
        lr_test: ``"auto"`` runs the LR range test when the prior LR is weak and a search is
            running; ``"always"`` or ``"never"``.
        kernel: ``"auto"`` times the fused, foreach and for-loop kernels on the real parameters
            and keeps the fastest; or force one.
        max_candidates: The most candidates the rules put in a race.
        explain_only: Print what would be chosen and why, and change nothing.
        save_json: Save the choice as ``auto_optimizer.json`` beside the logs.
        verbose: Print the choice at fit start (rank zero).
        replace_user_optimizer: What to do when the module's ``configure_optimizers`` returns an
            optimizer: ``False`` keeps it (and its schedulers) and only reports what would have
            been chosen; ``True`` replaces it with the choice, with one warning at fit start.
            Several optimizers or manual optimization are never replaced.

    Attributes:
        settings: The checked ``mode`` ... ``max_candidates`` arguments
            (:class:`~lightning_optkit.optim.settings.OptimizerSettings`).
        choice: The decision (:class:`~lightning_optkit.optim.choice.Choice`), once made.
    """

    def __init__(
        self,
        mode: Mode = "auto",
        candidates: list[str] | None = None,
        lr: float | None = None,
        weight_decay: float | None = None,
        embedding_lr_mult: float | None = None,
        layer_decay: float | None = None,
        budget: Union[float, str] = 0.05,
        lr_test: LRTest = "auto",
        kernel: Kernel = "auto",
        max_candidates: int = 3,
        explain_only: bool = False,
        save_json: bool = True,
        verbose: bool = True,
        replace_user_optimizer: bool = False,
    ) -> None:
        self.settings = OptimizerSettings(
            mode=mode, candidates=candidates, lr=lr, weight_decay=weight_decay,
            embedding_lr_mult=embedding_lr_mult, layer_decay=layer_decay, budget=budget,
            lr_test=lr_test, kernel=kernel, max_candidates=max_candidates)
        self.explain_only = explain_only
        self.save_json = save_json
        self.verbose = verbose
        if not isinstance(replace_user_optimizer, bool):
            raise fail("replace_user_optimizer", replace_user_optimizer, "expected true or false",
                       "pass replace_user_optimizer=False to keep the optimizer of "
                       "configure_optimizers")
        self.replace_user_optimizer = replace_user_optimizer
        self.kept_user_optimizer = False  # this fit runs the optimizers the module built
        self.choice: Choice | None = None
        self._restored: dict[str, Any] | None = None
        self._search: OptimizerSearch | None = None  # what the plan left for on_train_start
        self._module: pl.LightningModule | None = None
        self._announced = False
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
    def log(self) -> Any:
        """The module's ``log`` that Lightning attaches to every callback."""
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

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._trainer = trainer
        self._announced = False
        self.kept_user_optimizer = False
        lazy = is_overridden("configure_model", pl_module)  # layers may appear after setup
        if not lazy and not any(p.requires_grad for p in pl_module.parameters()):
            raise ValueError("AutoOptimizer: the model has no trainable parameters (every "
                             "requires_grad is False); unfreeze some layers before fit")
        self._install(pl_module)

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._uninstall()  # leave the module as it was (picklable), whatever the stage

    # -- the decision ------------------------------------------------------------------------
    def _plan(self, trainer: pl.Trainer, module: pl.LightningModule, mode: Mode | None = None) -> Plan:
        profile = inspect_model(module)
        horizon = trainer.estimated_stepping_batches
        known = horizon is not None and horizon != float("inf") and horizon > 0
        run = RunProfile(
            horizon=int(horizon) if known else None,  # -1 / inf: infinite data, no max_steps
            batch_size=getattr(trainer.train_dataloader, "batch_size", None),
            world_size=trainer.world_size, device=trainer.strategy.root_device.type,
            precision=str(trainer.precision))
        settings = self.settings if mode is None else dataclasses.replace(self.settings, mode=mode)
        return make_plan(profile, run, settings, module.automatic_optimization,
                         free_memory=_free_memory(trainer.strategy.root_device))

    def _pick_kernels(self, trainer: pl.Trainer, module: pl.LightningModule, choice: Choice,
                      names: list[str]) -> dict[str, str]:
        """The kernel of every candidate optimizer; the chosen one's is recorded in ``choice``."""
        fixed = self.settings.kernel
        if fixed != "auto":
            choice.kernel = fixed
            choice.reasons.append(f"kernel fixed by the user: {fixed}")
            return {n: fixed for n in names}
        t0 = time.perf_counter()
        deterministic = torch.are_deterministic_algorithms_enabled()  # Trainer(deterministic=True)
        kernels, all_times = choose_kernels([p for p in module.parameters() if p.requires_grad],
                                            names, timed=not deterministic)
        kernels = trainer.strategy.broadcast(kernels)
        choice.kernel = kernels[choice.optimizer]
        times = all_times.get(choice.optimizer, {})
        choice.kernel_times_us = {k: round(v * 1e6, 1) for k, v in times.items()}
        how = f"fastest of {sorted(times)} timed on the real parameters" if times else \
            "chosen by rule, not timed: the run is deterministic" if deterministic else \
            "the fastest available for a model this large (not timed)"
        choice.reasons.append(f"kernel {choice.kernel}: {how}")
        choice.overhead_seconds = round(time.perf_counter() - t0, 3)
        return kernels

    def _configure(self, module: pl.LightningModule, original: Any) -> Any:
        replaced = None
        out = original() if original is not None else None
        if out is not None:
            optimizers, schedulers, _ = _configure_optimizers(out)
            replaced = _describe(optimizers, schedulers)
            why = self._keep_reason(module, optimizers, replaced)
            resumed = self._restored is not None and self.replace_user_optimizer is False and \
                module.automatic_optimization and len(optimizers) == 1
            if why is not None and not resumed:  # a run checkpointed with a choice keeps it
                self._keep(module, why)
                return out
        if self._restored is not None:
            self.choice = _from_checkpoint(self._restored)
            self._search, self._restored = None, None
            return self.choice.build(module)
        plan = self._plan(module.trainer, module)
        choice = plan.choice
        if replaced:
            choice.reasons.insert(0, f"configure_optimizers returned {replaced}; replaced "
                                     "(replace_user_optimizer=True)")
            rank_zero_warn(f"AutoOptimizer: replacing {replaced} from configure_optimizers with "
                           f"{choice.optimizer} lr={choice.lr:.3g}; pass "
                           "replace_user_optimizer=False to keep your optimizer")
        kernels = self._pick_kernels(module.trainer, module, choice,
                                     [c.optimizer for c in plan.candidates])
        self._search = OptimizerSearch(plan.candidates, plan.budget or 0, plan.lr_test,
                                       kernels) if plan.searches else None
        self.choice = choice
        return choice.build(module)

    def _keep_reason(self, module: pl.LightningModule, optimizers: list[Any],
                     built: str) -> str | None:
        """Why the module's own optimizers stay, or ``None`` when they are replaced."""
        if not module.automatic_optimization:
            return (f"manual optimization with the module's own {built}: the training_step "
                    "steps them itself, so nothing is changed")
        if len(optimizers) > 1:
            return f"configure_optimizers returned {built}: several optimizers are never replaced"
        if not self.replace_user_optimizer:
            return (f"configure_optimizers returned {built}: kept (replace_user_optimizer=False; "
                    "pass True to use the choice below)")
        return None

    def _keep(self, module: pl.LightningModule, why: str) -> None:
        """Leave the module's optimizers alone; report what would have been chosen."""
        self.kept_user_optimizer = True
        self._search, self._restored = None, None
        try:
            choice = self._plan(module.trainer, module).choice
        except ValueError:  # e.g. mode='race' with manual optimization: report the rules' pick
            choice = self._plan(module.trainer, module, mode="rules").choice
        choice.reasons.insert(0, why)
        choice.reasons.insert(1, f"would choose {choice.optimizer} lr={choice.lr:.3g}")
        self.choice = choice
        self._summary = f"nothing chosen: {why}"

    # -- the search --------------------------------------------------------------------------
    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.explain_only or self.choice is None:
            return
        if self.kept_user_optimizer:
            self._announce(trainer, applied=False)
            return
        search, self._search = self._search, None
        if search is not None:
            with search_phase(trainer, "optimizer_race"):  # restores any search that was running
                try:
                    outcome = search.run(self.choice, pl_module, make_step(trainer, pl_module),
                                         batch_source(trainer), trainer.strategy.broadcast)
                finally:
                    reset_metrics(pl_module)
            self.choice = outcome.choice
            if outcome.optimizer is not None:
                trainer.strategy.optimizers = [outcome.optimizer]
        self._announce(trainer)

    # -- reporting and state -----------------------------------------------------------------
    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.explain_only:
            return
        plan = self._plan(trainer, pl_module)
        choice = plan.choice
        current = [type(o).__name__ for o in trainer.optimizers]
        choice.reasons.append(f"explain_only: nothing changed; the run keeps {current or 'no optimizer'}")
        if choice.mode == "race":
            choice.reasons.append(f"would race {[c.label for c in plan.candidates]} within "
                                  f"{plan.budget} loser steps")
        choice.build(pl_module)  # for the groups it would make; the run keeps its optimizer
        self.choice = choice
        self._announce(trainer, applied=False)

    def _announce(self, trainer: pl.Trainer, applied: bool = True) -> None:
        if self._announced or self.choice is None:
            return
        self._announced = True
        data = self.choice.to_dict()
        data["applied"] = applied
        if self.kept_user_optimizer:
            data["summary"] = self.__dict__.get("_summary")
        record_decision(trainer, "optimizer", data)
        self._print(format_choice(self.choice))
        directory = trainer.log_dir if self.save_json else None  # collective: all ranks call it
        if applied:
            for logger in trainer.loggers:
                logger.log_hyperparams(flat_hparams(self.choice))
        if directory and trainer.is_global_zero:
            write_json_atomic(os.path.join(directory, "auto_optimizer.json"), data)

    def _print(self, text: str) -> None:
        if self.verbose:
            _rank_zero_print(text)

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._train_eval(trainer, "train")

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._train_eval(trainer, "eval")

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.training:
            self._train_eval(trainer, "train")

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._train_eval(trainer, "eval")

    def _train_eval(self, trainer: pl.Trainer, mode: str) -> None:
        if self.explain_only or self.choice is None or self.kept_user_optimizer:
            return
        if get_optimizer_info(self.choice.optimizer).needs_train_eval:
            for opt in trainer.optimizers:
                getattr(opt, mode)()

    @override
    def state_dict(self) -> dict[str, Any]:
        if self.choice is None or self.explain_only or self.kept_user_optimizer:
            return {}
        return {"choice": self.choice.to_dict()}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "choice" not in state_dict:
            return
        self._restored = dict(state_dict["choice"])
        if self.choice is not None and self._module is not None and self._trainer is not None:
            # strategies that restore after ``configure_optimizers``: rebuild the saved choice
            self.choice = _from_checkpoint(self._restored)
            self._search = None
            self._trainer.strategy.optimizers = [self.choice.build(self._module)]


def _describe(optimizers: list[Any], schedulers: list[Any]) -> str:
    """``"Adam(lr=0.001) + StepLR"``: what ``configure_optimizers`` returned."""
    names = [f"{type(o).__name__}(lr={o.param_groups[0].get('lr', '?'):.3g})"
             if o.param_groups and isinstance(o.param_groups[0].get("lr"), float)
             else type(o).__name__ for o in optimizers]
    names += [type(getattr(s, "scheduler", s)).__name__ for s in schedulers]
    return " + ".join(names) or "no optimizer"


def _from_checkpoint(data: dict[str, Any]) -> Choice:
    choice = Choice.from_dict(data)
    choice.reasons.append("restored from the checkpoint: no new search")
    return choice


@rank_zero_only
def _rank_zero_print(text: str) -> None:
    print(text, flush=True)


def _free_memory(device: torch.device) -> int | None:
    """Free bytes on ``device`` (CUDA: the driver's count; CPU: available RAM), or ``None``."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.mem_get_info(device)[0])
        if device.type == "cpu":
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError, RuntimeError):
        return None
    return None
