"""Timing of calls Lightning does not name: ``LightningModule.log`` and each optimizer's ``step``."""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Any

import lightning.pytorch as pl
import torch

from lightning_optkit.profiling.accounting import PhaseAccountant

__all__ = ["install_timed_log", "time_optimizers", "untime_optimizers"]


def install_timed_log(module: pl.LightningModule, accountant: PhaseAccountant) -> Any:
    """Shadow ``module.log`` with a timed wrapper of the current one; returns the wrapper.

    Remove it with ``module.__dict__.pop("log")`` (only if it is still the one installed).
    """
    timed_log = accountant.timed_log(module.log)
    module.log = timed_log  # type: ignore[method-assign]
    return timed_log


def _hookable(optimizer: Any) -> bool:
    """Whether torch's step hooks enclose all of ``optimizer.step``.

    True for a ``torch.optim.Optimizer`` set up as usual whose ``step`` is its class's. A ``step`` set on
    the instance (by an LR scheduler, or by user code that adds work around the update) is timed by
    wrapping it instead, so that the added work counts too.
    """
    return (isinstance(optimizer, torch.optim.Optimizer) and "step" not in optimizer.__dict__
            and bool(getattr(type(optimizer).step, "hooked", False))
            and hasattr(optimizer, "_optimizer_step_pre_hooks"))


def time_optimizers(optimizers: Iterable[Any], accountant: PhaseAccountant, timed: list[tuple[Any, Any]]) -> None:
    """Time each new optimizer's own ``step`` (Lightning's ``optimizer_step`` hook around it is plumbing).

    A ``torch.optim.Optimizer`` with its class's ``step`` gets step pre- and post-hooks (its attributes
    stay untouched: attribute look-ups in its ``step`` stay fast); any other gets a timed bound method
    on the instance.

    Args:
        optimizers: The trainer's optimizers (one replaced mid-run is timed when seen).
        accountant: Receives the ``optimizer_step`` phase.
        timed: ``(optimizer, undo)`` pairs, extended in place: ``("hooks", handles)`` or
            ``("attribute", previous instance attribute step)``.
    """
    known = {id(o) for o, _ in timed}
    for optimizer in optimizers:
        if id(optimizer) in known:
            continue
        if _hookable(optimizer):
            pre, post = accountant.optimizer_hooks()
            handles = (optimizer.register_step_pre_hook(pre), optimizer.register_step_post_hook(post))
            timed.append((optimizer, ("hooks", handles)))
            continue
        enter, leave = accountant.enter, accountant.leave
        phase = accountant.phase_index("optimizer_step")
        original = optimizer.step

        def timed_step(opt: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            enter(phase)
            try:
                return _original(*args, **kwargs)
            finally:
                leave()

        timed.append((optimizer, ("attribute", optimizer.__dict__.get("step"))))
        # a bound method, so that LR schedulers created later can wrap it again
        optimizer.step = types.MethodType(timed_step, optimizer)


def untime_optimizers(timed: list[tuple[Any, Any]]) -> None:
    """Undo what ``time_optimizers`` did."""
    for optimizer, undo in timed:
        if undo[0] == "attribute":
            previous = undo[1]
            if previous is None:
                optimizer.__dict__.pop("step", None)
            else:
                optimizer.step = previous
        else:
            for handle in undo[1]:
                handle.remove()
