"""Timing of calls Lightning does not name: ``LightningModule.log``, each optimizer's ``step``, the
loggers' ``log_metrics`` (a slow tracker backend) and forward hooks registered on submodules."""

from __future__ import annotations

import functools
import inspect
import os
import types
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from lightning_optkit.profiling.accounting import PhaseAccountant

__all__ = ["TimedLog", "TimedOptimizers", "TimedLoggers", "TimedModuleHooks", "hook_source"]


class TimedLog:
    """``module.log`` shadowed by a timed wrapper of the current one (its cost hides inside ``training_step`` otherwise).

    Args:
        accountant: Receives the ``logging`` phase.
    """

    def __init__(self, accountant: PhaseAccountant) -> None:
        self._accountant = accountant
        self._module: pl.LightningModule | None = None
        self._wrapper: Any = None

    def install(self, module: pl.LightningModule) -> None:
        """Wrap ``module``'s current ``log``, unless the wrapper installed last is still in place."""
        if self._wrapper is not None and module.__dict__.get("log") is self._wrapper:
            return
        self._wrapper = self._accountant.timed_log(module.log)
        self._module = module
        module.log = self._wrapper  # type: ignore[method-assign]

    def remove(self) -> None:
        """Remove the wrapper (only if it is still the one in place: someone else's ``log`` stays)."""
        module, self._module = self._module, None
        if module is not None and module.__dict__.get("log") is self._wrapper:
            module.__dict__.pop("log", None)


def _hookable(optimizer: Any) -> bool:
    """Whether torch's step hooks enclose all of ``optimizer.step``.

    True for a ``torch.optim.Optimizer`` set up as usual whose ``step`` is its class's. A ``step`` set on
    the instance (by an LR scheduler, or by user code that adds work around the update) is timed by
    wrapping it instead, so that the added work counts too.
    """
    return (isinstance(optimizer, torch.optim.Optimizer) and "step" not in optimizer.__dict__
            and bool(getattr(type(optimizer).step, "hooked", False))
            and hasattr(optimizer, "_optimizer_step_pre_hooks"))


class TimedOptimizers:
    """Times each optimizer's own ``step`` (Lightning's ``optimizer_step`` hook around it is plumbing).

    A ``torch.optim.Optimizer`` with its class's ``step`` gets step pre- and post-hooks (its attributes
    stay untouched: attribute look-ups in its ``step`` stay fast); any other gets a timed bound method
    on the instance.

    Args:
        accountant: Receives the ``optimizer_step`` phase.
    """

    def __init__(self, accountant: PhaseAccountant) -> None:
        self._accountant = accountant
        #: ``(optimizer, undo)``: ``("hooks", handles)`` or ``("attribute", previous instance attribute step)``
        self._timed: list[tuple[Any, tuple[str, Any]]] = []
        self._ids: tuple[int, ...] = ()

    def watch(self, optimizers: Sequence[Any]) -> None:
        """Time the optimizers not timed yet (the first call, or an optimizer replaced mid-run)."""
        ids = tuple(map(id, optimizers))
        if ids == self._ids:
            return
        self._ids = ids
        known = {id(o) for o, _ in self._timed}
        for optimizer in optimizers:
            if id(optimizer) not in known:
                self._time(optimizer)

    def _time(self, optimizer: Any) -> None:
        accountant = self._accountant
        if _hookable(optimizer):
            pre, post = accountant.optimizer_hooks()
            handles = (optimizer.register_step_pre_hook(pre), optimizer.register_step_post_hook(post))
            self._timed.append((optimizer, ("hooks", handles)))
            return
        enter, leave = accountant.enter, accountant.leave
        phase = accountant.phase_index("optimizer_step")
        original = optimizer.step

        def timed_step(opt: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            enter(phase)
            try:
                return _original(*args, **kwargs)
            finally:
                leave()

        self._timed.append((optimizer, ("attribute", optimizer.__dict__.get("step"))))
        # a bound method, so that LR schedulers created later can wrap it again
        optimizer.step = types.MethodType(timed_step, optimizer)

    def undo(self) -> None:
        """Remove every hook and wrapper set by :meth:`watch`."""
        for optimizer, (how, previous) in self._timed:
            if how == "attribute":
                if previous is None:
                    optimizer.__dict__.pop("step", None)
                else:
                    optimizer.step = previous
            else:
                for handle in previous:
                    handle.remove()
        self._timed.clear()
        self._ids = ()


def hook_source(fn: Any) -> str:
    """``file:line`` of a hook function (``?`` when unknown)."""
    try:
        target = inspect.unwrap(getattr(fn, "func", fn))
        return f"{os.path.basename(inspect.getsourcefile(target) or '?')}:{inspect.getsourcelines(target)[1]}"
    except (TypeError, OSError):
        return "?"


def _timed(accountant: PhaseAccountant, phase: int, fn: Any) -> Any:
    enter, leave = accountant.enter_outside_validation, accountant.leave

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        enter(phase)
        try:
            return fn(*args, **kwargs)
        finally:
            leave()

    timed.__optkit_timed__ = fn  # type: ignore[attr-defined]
    return timed


class TimedLoggers:
    """Each logger's ``log_metrics`` timed as the phase ``logger:<Logger>.log_metrics`` (category ``logging``).

    Lightning calls it outside every hook it names, so a slow backend (a remote tracker) would
    otherwise be counted as ``other``. Inside a validation run its time stays validation.

    Args:
        accountant: Receives the phases.
    """

    def __init__(self, accountant: PhaseAccountant) -> None:
        self._accountant = accountant
        self._timed: list[tuple[Any, Any]] = []

    def install(self, loggers: Sequence[Any]) -> None:
        """Wrap the ``log_metrics`` of every logger (once)."""
        for logger in loggers:
            if any(known is logger for known, _ in self._timed):
                continue
            phase = self._accountant.phase_index(f"logger:{type(logger).__name__}.log_metrics")
            previous = logger.__dict__.get("log_metrics")
            logger.log_metrics = _timed(self._accountant, phase, logger.log_metrics)
            self._timed.append((logger, previous))

    def remove(self) -> None:
        """Remove the wrappers (a ``log_metrics`` set by someone else since stays)."""
        for logger, previous in self._timed:
            current = logger.__dict__.get("log_metrics")
            if current is not None and hasattr(current, "__optkit_timed__"):
                if previous is None:
                    del logger.__dict__["log_metrics"]
                else:
                    logger.log_metrics = previous
        self._timed.clear()


class TimedModuleHooks:
    """Forward (pre-)hooks registered on the model's submodules, timed as ``hook:<submodule>.forward_hook``.

    A hook runs inside the forward pass: without this its time is ``forward`` and nothing names it.
    A compiled model is left alone (a Python timer inside the graph would change what runs).

    Args:
        accountant: Receives the phases.
    """

    def __init__(self, accountant: PhaseAccountant) -> None:
        self._accountant = accountant
        self._timed: list[tuple[dict, Any, Any]] = []
        #: ``{phase: file:line}`` of the first hook of each phase
        self.locations: dict[str, str] = {}

    def install(self, module: torch.nn.Module) -> None:
        """Wrap the forward hooks of ``module`` and its submodules (once per fit)."""
        if self._timed or getattr(module, "_compiler_ctx", None) or getattr(module, "_compiled_call_impl", None):
            return
        for path, sub in module.named_modules():
            for kind, hooks in (("forward_pre_hook", sub._forward_pre_hooks), ("forward_hook", sub._forward_hooks)):
                if not hooks:
                    continue
                phase_name = f"hook:{path or type(sub).__name__}.{kind}"
                phase = self._accountant.phase_index(phase_name)
                for key, fn in list(hooks.items()):
                    if hasattr(fn, "__optkit_timed__"):
                        continue
                    self.locations.setdefault(phase_name, hook_source(fn))
                    hooks[key] = _timed(self._accountant, phase, fn)
                    self._timed.append((hooks, key, fn))

    def remove(self) -> None:
        """Put the original hooks back (those still registered)."""
        for hooks, key, fn in self._timed:
            current = hooks.get(key)
            if current is not None and getattr(current, "__optkit_timed__", None) is fn:
                hooks[key] = fn
        self._timed.clear()
        self.locations.clear()
