"""Let Lightning skip the per-step hooks nobody overrode, for the length of a fit.

For every hook of every step, Lightning formats a debug message and an action name, swaps the
module's ``_current_fx_name`` (two ``nn.Module.__setattr__`` calls), enters a profiler context and
calls the hook, even when the hook is the empty default. It skips a hook whose attribute is not
callable, so an instance attribute ``None`` in front of an empty default removes all of that
without changing what runs. Only hooks whose default does nothing and returns nothing are shadowed;
a hook that a class overrides or that an instance already sets is left alone.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.strategies import Strategy

__all__ = ["is_default", "shadow_empty_hooks", "restore_hooks"]

#: Per-batch hooks whose defaults on LightningModule and Callback do nothing and return ``None``
_TRAIN_PER_BATCH = (
    "on_train_batch_start", "on_train_batch_end", "on_before_zero_grad", "on_before_backward",
    "on_after_backward", "on_before_optimizer_step",
)
#: The module's validation batch hooks stay: the evaluation loop reads their signatures
_CALLBACK_PER_BATCH = (*_TRAIN_PER_BATCH, "on_validation_batch_start", "on_validation_batch_end")
#: Per-batch hooks of the strategy whose default does nothing
_STRATEGY_PER_BATCH = ("on_train_batch_start",)


def is_default(target: Any, base: type, name: str) -> bool:
    """Whether ``target``'s class leaves hook ``name`` as ``base`` defines it (not overridden)."""
    return getattr(type(target), name, None) is getattr(base, name, None)


def _shadow(target: Any, base: type, names: tuple[str, ...], shadowed: list[tuple[Any, str]]) -> None:
    for name in names:
        if name in target.__dict__ or not is_default(target, base, name):
            continue  # overridden, or set on the instance by someone else
        target.__dict__[name] = None
        shadowed.append((target, name))


def shadow_empty_hooks(trainer: pl.Trainer, module: pl.LightningModule, exclude: Any = None) -> list[tuple[Any, str]]:
    """Shadow the empty per-batch hooks of ``module``, the strategy and the callbacks with ``None``.

    Args:
        trainer: The trainer about to run the steps.
        module: The trainer's LightningModule.
        exclude: A callback to leave alone (one that manages its own hooks).

    Returns:
        ``(object, hook name)`` pairs to hand to :func:`restore_hooks` after the fit.
    """
    shadowed: list[tuple[Any, str]] = []
    module_hooks = _TRAIN_PER_BATCH
    if not trainer.gradient_clip_val:
        # the default only clips when the Trainer asks for it
        module_hooks += ("configure_gradient_clipping",)
    _shadow(module, pl.LightningModule, module_hooks, shadowed)
    _shadow(trainer.strategy, Strategy, _STRATEGY_PER_BATCH, shadowed)
    for callback in trainer.callbacks:
        if callback is not exclude:
            _shadow(callback, pl.Callback, _CALLBACK_PER_BATCH, shadowed)
    return shadowed


def restore_hooks(shadowed: list[tuple[Any, str]]) -> None:
    """Remove the ``None`` shadows set by :func:`shadow_empty_hooks` (those still in place)."""
    for target, name in shadowed:
        if name in target.__dict__ and target.__dict__[name] is None:
            del target.__dict__[name]
    shadowed.clear()
