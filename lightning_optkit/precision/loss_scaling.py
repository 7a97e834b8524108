"""fp16 loss scaling over one run, with no Trainer: ``LossScaling``.

It owns the :class:`~lightning_optkit.precision.scaler.DynamicGradScaler` (built when fp16 is first
used, for the device training runs on), a checkpoint's scaler state waiting for it, the first
batch's calibration, the order of a scaled optimizer step, the reads of the scaler's counters and
the overflow forensics (:class:`~lightning_optkit.precision.forensics.OverflowWatch`). What it
needs from the training loop arrives as plain values and callables: the closure, the hooks to run
between backward and the optimizer step, the model's named parameters, the global step.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

from torch import nn

from lightning_optkit.precision.forensics import OverflowWatch
from lightning_optkit.precision.options import ScalerConfig, as_group
from lightning_optkit.precision.scaler import DynamicGradScaler, ScalerStats

__all__ = ["LossScaling", "handles_unscaling"]


def handles_unscaling(optimizer: Any) -> bool:
    """The optimizer unscales inside its (fused) kernel: it takes ``grad_scale`` and ``found_inf``."""
    return bool(getattr(optimizer, "_step_supports_amp_scaling", False))


def _ignore(message: str) -> None:
    return None


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=2)


class LossScaling:
    """The fp16 side of a run: scaler, saved state, calibration, scaled step, counters, forensics.

    Args:
        config: The scaler's settings (``None``: the defaults).
        calibrate: Lower the scale on the first scaled batch until its gradients are finite.
        forensics: After a skipped step, trace the next overflowing step to the module at fault.
        note: Receives a line for the decision's reasons (the calibration's outcome).
        warn: Shows a forensics report (on rank zero in a multi-process run).
    """

    def __init__(
        self,
        config: ScalerConfig | None = None,
        *,
        calibrate: bool = False,
        forensics: bool = False,
        note: Callable[[str], None] = _ignore,
        warn: Callable[[str], None] = _warn,
    ) -> None:
        self.config = as_group("scaler", config, ScalerConfig)
        self.forensics = bool(forensics)
        self.note = note
        self.warn = warn
        self.scaler: DynamicGradScaler | None = None
        self.saved_state: dict[str, Any] | None = None
        self.calibrate_pending = bool(calibrate)
        self.calibration: dict[str, Any] | None = None
        self.overflows = OverflowWatch()
        self._fused_step = False

    # ------------------------------------------------------------------ the scaler's life cycle
    def use(self, device_type: str) -> DynamicGradScaler:
        """The scaler, built on first use for ``device_type`` with any saved state loaded."""
        if self.scaler is None:
            self.scaler = DynamicGradScaler(device_type, self.config)
            if self.saved_state:
                self.scaler.load_state_dict(self.saved_state)
                self.calibrate_pending = False
        return self.scaler

    def drop_unused(self, device_type: str) -> bool:
        """Forget a scaler built for another device that has not scaled anything yet."""
        scaler = self.scaler
        if scaler is not None and scaler._device != device_type and scaler._scale is None:
            self.scaler = None
            return True
        return False

    @property
    def skipped_steps(self) -> int:
        """Updates skipped on inf/nan gradients so far (a restored count before the first use)."""
        if self.scaler is None:
            return int((self.saved_state or {}).get("skipped_steps", 0))
        return self.scaler.skipped_steps

    def state(self) -> dict[str, Any] | None:
        """The scaler's checkpoint state (the saved one while no scaler was built)."""
        return self.scaler.state_dict() if self.scaler is not None else self.saved_state

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a scaler state (also a bare ``GradScaler`` state); it is already calibrated."""
        self.saved_state = dict(state)
        self.calibrate_pending = False
        if self.scaler is not None:
            self.scaler.load_state_dict(state)

    # ------------------------------------------------------------------ the step
    def step(
        self,
        optimizer: Any,
        closure: Callable[[], Any],
        after_closure: Callable[[], None],
        *,
        automatic: bool,
        named_params: Callable[[], Iterable[tuple[str, nn.Parameter]]],
        global_step: int,
        **kwargs: Any,
    ) -> Any:
        """closure -> unscale_ -> ``after_closure`` (hooks, clipping) -> scaler.step -> scaler.update.

        Args:
            optimizer: The optimizer to step.
            closure: Forward and scaled backward; returns the loss (``None``: nothing to step).
            after_closure: What runs on the true gradients before the update (hooks, clipping).
            automatic: Automatic optimization (the closure may be re-run for the calibration).
            named_params: The model's named parameters (read only when forensics trace the step).
            global_step: The step's number, for forensics reports.
            **kwargs: Passed to ``optimizer.step``.

        Returns:
            What ``optimizer.step`` returned, or the closure's ``None``.
        """
        scaler = self.scaler
        assert scaler is not None, "LossScaling.use(device_type) first"
        result = closure()
        if self.calibrate_pending:
            result = self._calibrate(scaler, optimizer, closure, result if automatic else None, result)
        if self.overflows.armed:
            report = self.overflows.collect(named_params(), step=global_step)
            if report is not None:
                self.warn(f"AutoPrecision forensics: {report.message()}")
        # backward was skipped in automatic optimization (training_step returned None): nothing to step
        skip = result is None and automatic
        if not skip and not handles_unscaling(optimizer) and not scaler.is_unscaled(optimizer):
            scaler.unscale_(optimizer)  # hooks and clipping see true gradients
        after_closure()
        if skip:
            return result
        self._fused_step = handles_unscaling(optimizer)
        output = scaler.step(optimizer, **kwargs)  # skipped (or skipped in the fused kernel) on inf/nan
        scaler.update()
        return output

    def _calibrate(self, scaler: DynamicGradScaler, optimizer: Any, closure: Callable[[], Any], loss: Any,
                   result: Any) -> Any:
        self.calibrate_pending = False
        rerun, self.calibration = scaler.calibrate(optimizer, closure, loss)
        start, end, reruns = (self.calibration[k] for k in ("initial_scale", "scale", "reruns"))
        self.note(f"loss scale calibrated on the first batch: {start:g} -> {end:g} ({reruns} re-runs)")
        return result if loss is None else rerun

    def unscale_for_clipping(self, optimizer: Any) -> None:
        """Unscale before clipping where a fused optimizer would otherwise unscale in its kernel."""
        if self.scaler is not None and handles_unscaling(optimizer) and not self.scaler.is_unscaled(optimizer):
            self.scaler.unscale_(optimizer)

    # ------------------------------------------------------------------ the counters
    def read_due(self, device_type: str, global_step: int, every: int) -> bool:
        """Whether reading the counters costs nothing now: on CPU, or when ``GradScaler.step``
        already synchronised (non-fused optimizers read ``found_inf`` on the host); with a fused
        optimizer on an accelerator only every ``every`` steps, so fp16 training keeps no per-step
        synchronisation."""
        if device_type == "cpu" or not self._fused_step:
            return True
        return (global_step + 1) % max(1, every) == 0

    def observe(self, device_type: str, model: nn.Module) -> ScalerStats | None:
        """Read the counters (on accelerators the previous read's snapshot, whose kernels have
        finished) and arm the forensics after a new skipped step.

        Returns:
            The counters, or ``None`` on an accelerator's first read.
        """
        scaler = self.scaler
        assert scaler is not None, "LossScaling.use(device_type) first"
        stats = scaler.stats() if device_type == "cpu" else scaler.stats_lagged()
        if stats is not None and self.forensics:
            self.overflows.observe(model, stats["skipped_steps"])
        return stats
