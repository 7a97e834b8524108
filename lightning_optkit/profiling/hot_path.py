"""The per-event code of :class:`~lightning_optkit.profiling.accounting.PhaseAccountant`, inlined.

Lightning enters a profiler context for most hooks of every step, and between two such events the
model's own work evicts the caches: each extra Python call or object touched on this path costs
far more in a training step than in a micro-benchmark. The objects here therefore do the
accountant's work themselves (one Python frame per event, no method calls on the common path)
and fall back to the accountant's methods on the rare paths (a device timer, a validation run).
They are used only by the accountant's own factories, which keep the two in step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lightning_optkit.profiling.phases import CORE_PHASES

__all__ = ["ActionContext", "BatchMarkContext", "timed_log", "step_hooks"]

_FETCH = CORE_PHASES.index("data_fetch")


class ActionContext:
    """``with`` body of one timed action: ``start(name)`` / ``stop(name)`` of the accountant, inlined.

    Args:
        accountant: The :class:`PhaseAccountant` to update.
        phase: Index of the action's phase.
        validation: Whether the action belongs to a validation run.
    """

    __slots__ = ("_acct", "_phase", "_validation")

    def __init__(self, accountant: Any, phase: int, validation: bool) -> None:
        self._acct = accountant
        self._phase = phase
        self._validation = validation

    def __enter__(self) -> None:
        acct, phase = self._acct, self._phase
        now = acct.clock()
        acct._acc[acct._cur] += now - acct._last
        acct._last = now
        stack = acct._stack
        if stack:
            stack.append(acct._cur)
        elif phase != _FETCH and self._validation == acct._in_val:
            stack.append(acct._gap)  # ``_top_level`` when it neither starts a step nor changes the region
        else:
            acct._top_level(phase, self._validation, now)
        if acct.device_timer is not None and acct._slot[phase] != acct._slot[acct._cur]:
            acct._device_switch(acct._cur, phase)
        acct._cur = phase

    def __exit__(self, *exc: Any) -> None:
        acct = self._acct
        stack = acct._stack
        if not stack:
            return
        now = acct.clock()
        acct._acc[acct._cur] += now - acct._last
        acct._last = now
        previous, acct._cur = acct._cur, stack.pop()
        if acct.device_timer is not None and acct._slot[previous] != acct._slot[acct._cur]:
            acct._device_switch(previous, acct._cur)


class BatchMarkContext:
    """``with`` body of ``run_training_batch``: marks that a batch ran; its time stays with the enclosing phase."""

    __slots__ = ("_acct",)

    def __init__(self, accountant: Any) -> None:
        self._acct = accountant

    def __enter__(self) -> None:
        acct = self._acct
        if acct._batch_ran and not acct._stack:  # a second batch without a fetch: the accountant closes the step
            acct.batch_mark()
        else:
            acct._batch_ran = True

    def __exit__(self, *exc: Any) -> None:
        return None


def timed_log(accountant: Any, log: Callable[..., Any]) -> Callable[..., Any]:
    """``log`` (a ``LightningModule.log``) wrapped so that its calls are the ``logging`` phase, counted.

    Inside a validation run, or with a device timer, the accountant's own ``start_logging`` / ``leave``
    do the work (validation time, device marks); otherwise it is inlined here.
    """
    acct = accountant
    clock = acct.clock
    logging = acct.phase_index("logging")

    def timed(*args: Any, **kwargs: Any) -> Any:
        if acct._in_val or acct.device_timer is not None:
            acct.start_logging()
            try:
                return log(*args, **kwargs)
            finally:
                acct.leave()
        now = clock()
        acc, cur = acct._acc, acct._cur
        if acc is acct.run_ns:
            acct.log_calls += 1
        acc[cur] += now - acct._last
        acct._last = now
        stack = acct._stack
        stack.append(cur)
        acct._cur = logging
        try:
            return log(*args, **kwargs)
        finally:
            if stack:
                now = clock()
                acct._acc[acct._cur] += now - acct._last
                acct._last = now
                acct._cur = stack.pop()

    return timed


def step_hooks(accountant: Any, phase: int) -> tuple[Callable[..., None], Callable[..., None]]:
    """A ``torch.optim.Optimizer`` step pre-hook and post-hook that make the step's own time ``phase``.

    Register them with ``register_step_pre_hook`` / ``register_step_post_hook``: unlike a wrapper
    of ``optimizer.step``, they leave the optimizer's attributes untouched.
    """
    acct = accountant
    clock = acct.clock

    def pre_hook(optimizer: Any, args: Any, kwargs: Any) -> None:
        if acct.device_timer is not None:
            acct.enter(phase)
            return
        now = clock()
        cur = acct._cur
        acct._acc[cur] += now - acct._last
        acct._last = now
        acct._stack.append(cur)
        acct._cur = phase

    def post_hook(optimizer: Any, args: Any, kwargs: Any) -> None:
        if acct.device_timer is not None:
            acct.leave()
            return
        stack = acct._stack
        if stack:
            now = clock()
            acct._acc[acct._cur] += now - acct._last
            acct._last = now
            acct._cur = stack.pop()

    return pre_hook, post_hook
