"""Lightning's empty hooks: which ones nobody overrode, not timed on their own, and skipped for a fit.

For every hook of every step, Lightning formats a debug message and an action name, swaps the
module's ``_current_fx_name`` (two ``nn.Module.__setattr__`` calls), enters a profiler context and
calls the hook, even when the hook is the empty default. Such a hook's action is *quiet* (its time
stays with the phase around it, see :func:`quiet_actions`). Lightning skips a hook whose attribute
is not callable, so an instance attribute ``None`` in front of an empty default removes all of that
without changing what runs (:class:`HookShadows`). Only hooks whose default does nothing and
returns nothing are shadowed; a hook that a class overrides or that an instance already sets is
left alone.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

import lightning.pytorch as pl
from lightning.pytorch.strategies import Strategy

__all__ = ["EMPTY_HOOKS", "is_default", "quiet_actions", "HookShadows"]

#: The LightningModule's hooks whose default does nothing, by how Lightning calls them:
#: ``train_batch``: every training batch, the result unused (the Callback defaults are empty too);
#: ``val_batch``: every validation batch (the evaluation loop reads the module's signatures, so
#: only the callbacks' are shadowed); ``once``: per epoch, fit or validation run (not worth
#: shadowing); ``passes_batch``: the default hands the batch back, so it is never shadowed.
EMPTY_HOOKS: dict[str, Literal["train_batch", "val_batch", "once", "passes_batch"]] = {
    "on_train_batch_start": "train_batch",
    "on_train_batch_end": "train_batch",
    "on_before_zero_grad": "train_batch",
    "on_before_backward": "train_batch",
    "on_after_backward": "train_batch",
    "on_before_optimizer_step": "train_batch",
    "on_validation_batch_start": "val_batch",
    "on_validation_batch_end": "val_batch",
    "on_train_epoch_start": "once",
    "on_train_epoch_end": "once",
    "on_validation_epoch_start": "once",
    "on_validation_epoch_end": "once",
    "on_validation_start": "once",
    "on_validation_end": "once",
    "on_train_start": "once",
    "on_train_end": "once",
    "on_fit_start": "once",
    "on_fit_end": "once",
    "on_before_batch_transfer": "passes_batch",
    "on_after_batch_transfer": "passes_batch",
    "transfer_batch_to_device": "passes_batch",
}
#: Per-batch hooks of the strategy whose default does nothing
_STRATEGY_PER_BATCH = ("on_train_batch_start",)


def is_default(target: Any, base: type, name: str) -> bool:
    """Whether ``target``'s class leaves hook ``name`` as ``base`` defines it (not overridden)."""
    return getattr(type(target), name, None) is getattr(base, name, None)


def _module_hooks(trainer: pl.Trainer, kinds: Collection[str]) -> tuple[str, ...]:
    """The LightningModule's empty hooks of ``kinds``, with the clipping hook when the Trainer does not clip."""
    names = tuple(name for name, kind in EMPTY_HOOKS.items() if kind in kinds)
    if not trainer.gradient_clip_val:
        names += ("configure_gradient_clipping",)  # the default only clips when the Trainer asks for it
    return names


def _hooks_of(base: type) -> list[str]:
    return [h for h in dir(base) if h.startswith("on_") and callable(getattr(base, h))]


def quiet_actions(trainer: pl.Trainer, module: pl.LightningModule, exclude: Any = None) -> frozenset[str]:
    """Action names of the hooks nobody overrode (Lightning still calls and names them every step).

    Args:
        trainer: The trainer of the fit.
        module: Its LightningModule.
        exclude: A callback whose every hook is quiet (the profiler's own cost a few hundred nanoseconds).
    """
    names = set()
    for callback in trainer.callbacks:
        for hook in _hooks_of(pl.Callback):
            if callback is exclude or is_default(callback, pl.Callback, hook):
                names.add(f"[Callback]{callback.state_key}.{hook}")
    owner = type(module).__name__
    for hook in _module_hooks(trainer, EMPTY_HOOKS.values()):
        if is_default(module, pl.LightningModule, hook):
            names.add(f"[LightningModule]{owner}.{hook}")
    if is_default(module, pl.LightningModule, "optimizer_step"):
        names.add(f"[LightningModule]{owner}.optimizer_step")  # plumbing around the timed optimizer.step
    strategy = trainer.strategy
    for hook in _hooks_of(Strategy):
        if is_default(strategy, Strategy, hook):
            names.add(f"[Strategy]{type(strategy).__name__}.{hook}")
    return frozenset(names)


class HookShadows:
    """The ``None`` shadows in front of the empty per-batch hooks, set for a fit and removed after it."""

    def __init__(self) -> None:
        #: ``(object, hook name)`` of every shadow set and not yet removed.
        self.shadowed: list[tuple[Any, str]] = []

    def shadow(self, trainer: pl.Trainer, module: pl.LightningModule, exclude: Any = None) -> None:
        """Shadow the empty per-batch hooks of ``module``, the strategy and the callbacks with ``None``.

        Args:
            trainer: The trainer about to run the steps.
            module: The trainer's LightningModule.
            exclude: A callback to leave alone (one that manages its own hooks).
        """
        self._shadow(module, pl.LightningModule, _module_hooks(trainer, ("train_batch",)))
        self._shadow(trainer.strategy, Strategy, _STRATEGY_PER_BATCH)
        callback_hooks = tuple(name for name, kind in EMPTY_HOOKS.items() if kind in ("train_batch", "val_batch"))
        for callback in trainer.callbacks:
            if callback is not exclude:
                self._shadow(callback, pl.Callback, callback_hooks)

    def _shadow(self, target: Any, base: type, names: tuple[str, ...]) -> None:
        for name in names:
            if name in target.__dict__ or not is_default(target, base, name):
                continue  # overridden, or set on the instance by someone else
            target.__dict__[name] = None
            self.shadowed.append((target, name))

    def restore(self) -> None:
        """Remove the shadows set by :meth:`shadow` (those still in place)."""
        for target, name in self.shadowed:
            if name in target.__dict__ and target.__dict__[name] is None:
                del target.__dict__[name]
        self.shadowed.clear()
