"""Timing of calls Lightning does not name: ``LightningModule.log`` and each optimizer's ``step``."""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Any

import lightning.pytorch as pl

from lightning_optkit.profiling.accounting import PhaseAccountant

__all__ = ["install_timed_log", "wrap_optimizers", "restore_optimizers"]


def install_timed_log(module: pl.LightningModule, accountant: PhaseAccountant) -> Any:
    """Shadow ``module.log`` with a timed wrapper of the current one; returns the wrapper.

    Remove it with ``module.__dict__.pop("log")`` (only if it is still the one installed).
    """
    original_log = module.log
    start, stop = accountant.start_logging, accountant.leave

    def timed_log(*args: Any, **kwargs: Any) -> None:
        start()
        try:
            original_log(*args, **kwargs)
        finally:
            stop()

    module.log = timed_log  # type: ignore[method-assign]
    return timed_log


def wrap_optimizers(optimizers: Iterable[Any], accountant: PhaseAccountant, wrapped: list[tuple[Any, Any]]) -> None:
    """Time each new optimizer's own ``step`` (Lightning's ``optimizer_step`` hook around it is plumbing).

    Args:
        optimizers: The trainer's optimizers (one replaced mid-run is wrapped when seen).
        accountant: Receives the ``optimizer_step`` phase.
        wrapped: ``(optimizer, previous instance attribute)`` pairs, extended in place.
    """
    known = {id(o) for o, _ in wrapped}
    enter, leave = accountant.enter, accountant.leave
    phase = accountant.phase_index("optimizer_step")
    for optimizer in optimizers:
        if id(optimizer) in known:
            continue
        original = optimizer.step

        def timed_step(opt: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            enter(phase)
            try:
                return _original(*args, **kwargs)
            finally:
                leave()

        wrapped.append((optimizer, optimizer.__dict__.get("step")))
        # a bound method, so that LR schedulers created later can wrap it again
        optimizer.step = types.MethodType(timed_step, optimizer)


def restore_optimizers(wrapped: list[tuple[Any, Any]]) -> None:
    """Put back what ``wrap_optimizers`` replaced."""
    for optimizer, previous in wrapped:
        if previous is None:
            optimizer.__dict__.pop("step", None)
        else:
            optimizer.step = previous
