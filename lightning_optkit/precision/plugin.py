"""``AutoPrecision``: a Lightning precision plugin that picks the fastest safe precision.

Thin glue over the pure parts (``decision``, ``probe``, ``scaler``, ``ladder``, ``forensics``,
``keep_fp32``). Lightning gives a precision plugin no Trainer; it passes the LightningModule to
``convert_module`` (setup, before DDP wrapping) and ``optimizer_step``, where ``module.trainer``
is set, and the plugin keeps a weak reference to it. Setup errors come from ``convert_module`` and
``connect``; the decision is made on the first training batch (``convert_input``), after Lightning
restored any checkpoint; precision switches happen only after an optimizer step, so an
accumulation window never mixes two precisions.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Generator, Sequence
from typing import Any, Literal

import torch
from lightning.fabric.plugins.precision.amp import _optimizer_handles_unscaling
from lightning.pytorch.plugins.precision.precision import Precision
from lightning.pytorch.utilities import GradClipAlgorithmType
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import nn

from lightning_optkit._trainer import current_search_phase, set_search_phase
from lightning_optkit.precision import _begin, _steps
from lightning_optkit.precision.decision import (
    Decision,
    check_fixed_mode,
    uses_scaler,
    validate_mode,
)
from lightning_optkit.precision.forensics import OverflowTracer
from lightning_optkit.precision.hardware import HardwareFacts, probe_hardware
from lightning_optkit.precision.keep_fp32 import (
    apply_keep_fp32,
    match_keep_fp32,
    remove_keep_fp32,
    validate_keep_fp32,
)
from lightning_optkit.precision.ladder import FallbackPolicy, validate_fallback_options
from lightning_optkit.precision.probe import ProbeRecorder, validate_probe_options
from lightning_optkit.precision.scaler import DynamicGradScaler, validate_scaler_options

__all__ = ["AutoPrecision"]

_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
_STATE_FORMAT = 1


class AutoPrecision(Precision):
    """Mixed precision that picks bf16 / fp16 / fp32 from the hardware and a measured check.

    Args:
        mode: ``"auto"`` decides from the hardware (and the probe); ``"bf16-mixed"``,
            ``"16-mixed"`` or ``"32-true"`` fixes the precision (the scaler, ladder and forensics
            still apply to fp16).
        probe: In ``"auto"`` mode, when more than one precision is plausible, time a few real
            training steps in each at the start of fit and keep the fastest with a finite loss.
        probe_warmup_steps: Untimed steps the first time each candidate runs.
        probe_steps: Timed steps per candidate.
        probe_rounds: Visits per candidate (interleaved, ABBA order).
        probe_margin: Half precision must be this much faster than fp32 to be kept (0.03 = 3%).
        probe_reject_factor: Stop probing a candidate after two consecutive steps (not counting
            the first after a switch) slower than this many fp32 median steps (single process).
        init_scale: Initial fp16 loss scale.
        growth_factor: Scale multiplier after ``growth_interval`` clean steps (> 1).
        backoff_factor: Scale multiplier on an overflow once the hysteresis is used up, in (0, 1).
        growth_interval: Consecutive clean steps before the scale grows.
        hysteresis: Overflows tolerated before the scale backs off (1 = every overflow).
        min_scale: Floor of the loss scale.
        max_scale: Ceiling of the loss scale.
        consecutive_hysteresis: Restore the hysteresis after every clean step.
        calibrate: Lower the initial scale on the first fp16 batch (re-running its forward and
            backward) until its gradients are finite, so training does not start with skipped steps.
        fallback: Switch fp16 -> bf16 (where native) or fp32 mid-run when loss scaling collapses.
        fallback_patience: Consecutive skipped steps at ``min_scale`` that trigger the fallback.
        fallback_skip_rate: Skip rate over ``fallback_window`` steps that triggers it (1.0: off).
        fallback_window: Steps over which the skip rate is measured.
        forensics: After a skipped step, trace the next overflowing step and name the module whose
            output or gradient became non-finite (no hooks while steps are clean).
        keep_fp32: Modules run outside autocast in fp32: names, type names (``"LayerNorm"``,
            ``"torch.nn.LayerNorm"``) or regular expressions over module names.
        verbose: Print the decision at fit start (rank zero).
    """

    def __init__(
        self,
        mode: Literal["auto", "bf16-mixed", "16-mixed", "32-true"] = "auto",
        probe: bool = True,
        probe_warmup_steps: int = 2,
        probe_steps: int = 6,
        probe_rounds: int = 2,
        probe_margin: float = 0.03,
        probe_reject_factor: float = 2.0,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        hysteresis: int = 2,
        min_scale: float = 1.0,
        max_scale: float = 2.0**24,
        consecutive_hysteresis: bool = False,
        calibrate: bool = False,
        fallback: bool = True,
        fallback_patience: int = 20,
        fallback_skip_rate: float = 0.5,
        fallback_window: int = 100,
        forensics: bool = False,
        keep_fp32: Sequence[str | type[nn.Module]] | None = None,
        verbose: bool = True,
    ) -> None:
        validate_mode(mode)
        validate_scaler_options(init_scale, growth_factor, backoff_factor, growth_interval, hysteresis,
                                min_scale, max_scale)
        validate_probe_options(probe_warmup_steps, probe_steps, probe_rounds, probe_margin, probe_reject_factor)
        validate_fallback_options(fallback_patience, fallback_skip_rate, fallback_window)
        self.mode = mode
        self.probe = bool(probe)
        self.probe_plan_options = {"warmup_steps": probe_warmup_steps, "steps": probe_steps,
                                   "rounds": probe_rounds, "reject_factor": float(probe_reject_factor)}
        self.probe_margin = float(probe_margin)
        self.scaler_options = {"init_scale": float(init_scale), "growth_factor": float(growth_factor),
                               "backoff_factor": float(backoff_factor), "growth_interval": growth_interval,
                               "hysteresis": hysteresis, "min_scale": float(min_scale),
                               "max_scale": float(max_scale), "consecutive_hysteresis": consecutive_hysteresis}
        self.calibrate = bool(calibrate)
        self.fallback = bool(fallback)
        self.policy = FallbackPolicy(fallback_patience, float(fallback_skip_rate), fallback_window)
        self.forensics = bool(forensics)
        self.keep_fp32 = validate_keep_fp32(keep_fp32)
        self.verbose = bool(verbose)

        self.precision = "32-true"  # the precision in use now (read by Lightning as trainer.precision)
        self.decision: Decision | None = None
        self.facts: HardwareFacts | None = None
        self.overflow_reports: list[dict[str, Any]] = []
        self.calibration: dict[str, Any] | None = None
        self.device_type = "cpu"
        self._scaler: DynamicGradScaler | None = None
        self._pending_scaler_state: dict[str, Any] | None = None
        self._loaded_decision: Decision | None = None
        self._probe: ProbeRecorder | None = None
        self._tracer: OverflowTracer | None = None
        self._trainer_ref: Callable[[], Any] | None = None
        self._started = False
        self._automatic = True
        self._calibrate_pending = self.calibrate
        self._last_exit: float | None = None
        self._step_start: float | None = None
        self._phase_done = False
        self._fused_step = False
        self._lag_snapshot: torch.Tensor | None = None
        self._seen_skips = 0
        self._forensics_cooldown = 0
        self._fixed_warnings: list[str] = []
        self._no_scaler_reason: str | None = None
        if mode != "auto":  # known now: trainer.precision and the scaler are right before setup
            self.device_type = "cuda" if torch.cuda.is_available() else "cpu"
            self._activate(mode)

    # ------------------------------------------------------------------ public state
    @property
    def scaler(self) -> DynamicGradScaler | None:
        """The loss scaler while fp16 is in use, else ``None`` (Lightning's ``trainer.scaler``)."""
        return self._scaler if uses_scaler(self.precision) else None

    @property
    def skipped_steps(self) -> int:
        """Optimizer updates skipped on inf/nan gradients so far (one device read)."""
        if self._scaler is None:  # never ran fp16 here; a restored count still counts
            return int((self._pending_scaler_state or {}).get("skipped_steps", 0))
        return self._scaler.skipped_steps

    # ------------------------------------------------------------------ setup
    def _trainer(self) -> Any:
        return None if self._trainer_ref is None else self._trainer_ref()

    def _remember(self, trainer: Any) -> None:
        if trainer is not None and self._trainer() is not trainer:
            self._trainer_ref = weakref.ref(trainer)

    def convert_module(self, module: nn.Module) -> nn.Module:
        """Read the hardware, check a fixed mode against it and apply ``keep_fp32`` (setup)."""
        trainer = getattr(module, "_trainer", None)
        self._remember(trainer)
        device = trainer.strategy.root_device if trainer is not None else next(
            (p.device for p in module.parameters()), torch.device("cpu"))
        self.device_type = device.type
        if self._scaler is not None and self._scaler._device != self.device_type and self._scaler._scale is None:
            self._scaler = None  # built for a guessed device before setup and never used
            self._activate(self.precision)
        self.facts = probe_hardware(device)
        self._fixed_warnings = [] if self.mode == "auto" else check_fixed_mode(self.mode, self.facts)
        for message in self._fixed_warnings:
            rank_zero_warn(f"AutoPrecision: {message}")
        if self.keep_fp32:
            matches = match_keep_fp32(module, self.keep_fp32)
            apply_keep_fp32(module, sorted({n for names in matches.values() for n in names}), self.device_type)
        self._automatic = bool(getattr(module, "automatic_optimization", True))
        if self.calibrate and trainer is not None and trainer.accumulate_grad_batches > 1:
            rank_zero_warn("AutoPrecision(calibrate=True) is ignored with accumulate_grad_batches > 1 "
                           "(re-running the last micro-batch would double its gradients)")
            self._calibrate_pending = False
        return module

    def connect(self, model: nn.Module, optimizers: list[Any], lr_schedulers: list[Any]) -> Any:
        """Refuse loss scaling for LBFGS (its closure runs many backward passes)."""
        if any(isinstance(opt, torch.optim.LBFGS) for opt in optimizers):
            if self.mode == "16-mixed":
                raise MisconfigurationException(
                    "AutoPrecision(mode='16-mixed') cannot scale the loss of LBFGS; use mode='auto', "
                    "'bf16-mixed' or '32-true'")
            self._no_scaler_reason = "LBFGS cannot use loss scaling: 16-mixed excluded"
        return model, optimizers, lr_schedulers

    # ------------------------------------------------------------------ the decision
    def _maybe_start(self, trainer: Any = None) -> None:
        if self._started:
            return
        trainer = trainer if trainer is not None else self._trainer()
        if trainer is None:
            return
        if current_search_phase(trainer) not in (None, "precision_probe"):
            return  # another component's search (the optimizer race) runs: decide on real steps
        if self.facts is None:  # a strategy that never called convert_module
            self.convert_module(trainer.lightning_module)
        self._started = True
        _begin.start(self, trainer, fitting=_is_fitting(trainer))

    def _activate(self, precision: str) -> None:
        self.precision = precision
        if self._tracer is not None and not uses_scaler(precision):
            self._tracer.disarm()  # forensics trace fp16 steps only
        if uses_scaler(precision) and self._scaler is None:
            self._scaler = DynamicGradScaler(self.device_type, **self.scaler_options)  # type: ignore[arg-type]
            if self._pending_scaler_state:
                self._scaler.load_state_dict(self._pending_scaler_state)
                self._calibrate_pending = False
            self.policy.reset()

    def _announce(self, trainer: Any) -> None:
        assert self.decision is not None
        _steps.publish(trainer, self.decision, verbose=self.verbose)

    def convert_input(self, data: Any) -> Any:
        """Decide before the first training batch's hooks run; end the probe's search phase."""
        trainer = self._trainer()
        if trainer is not None and getattr(trainer, "training", False):
            if self._phase_done:
                self._end_phase(trainer)
            self._maybe_start(trainer)
        return data

    def _end_phase(self, trainer: Any) -> None:
        self._phase_done = False
        if current_search_phase(trainer) == "precision_probe":  # never end another component's search
            set_search_phase(trainer, None)

    # ------------------------------------------------------------------ contexts
    def forward_context(self) -> contextlib.AbstractContextManager:
        """Autocast in the current precision (nothing for ``32-true``)."""
        dtype = _DTYPES.get(self.precision)
        if dtype is None:
            return contextlib.nullcontext()
        # The weight cast cache is safe when no optimizer step runs inside the autocast region
        # (automatic optimization steps after the training step returned).
        return torch.autocast(self.device_type, dtype=dtype, cache_enabled=self._automatic)

    @contextlib.contextmanager
    def train_step_context(self) -> Generator[None, None, None]:
        """Make the decision on the first training step, then autocast."""
        self._maybe_start()
        with self.forward_context():
            yield

    def val_step_context(self) -> contextlib.AbstractContextManager:  # type: ignore[override]
        """Autocast for validation (decides by rule when validating without fit)."""
        return self._eval_context()

    def test_step_context(self) -> contextlib.AbstractContextManager:  # type: ignore[override]
        """Autocast for testing."""
        return self._eval_context()

    def predict_step_context(self) -> contextlib.AbstractContextManager:  # type: ignore[override]
        """Autocast for prediction."""
        return self._eval_context()

    @contextlib.contextmanager
    def _eval_context(self) -> Generator[None, None, None]:
        trainer = self._trainer()
        if trainer is not None and not _is_fitting(trainer):
            self._maybe_start(trainer)
        with self.forward_context():
            yield

    # ------------------------------------------------------------------ the step
    def pre_backward(self, tensor: torch.Tensor, module: Any) -> torch.Tensor:  # type: ignore[override]
        """Scale the loss while fp16 is in use."""
        scaler = self.scaler
        if scaler is not None:
            tensor = scaler.scale(tensor)
        return super().pre_backward(tensor, module)

    def optimizer_step(self, optimizer: Any, model: Any, closure: Callable[[], Any], **kwargs: Any) -> Any:  # type: ignore[override]
        """Run the step in the current precision, then probe, monitor and log."""
        trainer = getattr(model, "trainer", None)
        self._remember(trainer)
        self._maybe_start(trainer)
        if self._probe is not None:
            _steps.probe_enter(self)
        losses: list[Any] = []

        def recording_closure() -> Any:
            result = closure()
            losses.append(result)
            return result

        if self.scaler is not None:
            if isinstance(optimizer, torch.optim.LBFGS):
                raise MisconfigurationException("AutoPrecision cannot scale the loss of LBFGS")
            output = _steps.scaled_step(self, optimizer, model, recording_closure, **kwargs)
        else:
            output = super().optimizer_step(optimizer, model, recording_closure, **kwargs)
        if trainer is not None:
            _steps.after_step(self, trainer, losses[-1] if losses else None)
        return output

    def clip_gradients(self, optimizer: Any, clip_val: float = 0.0,
                       gradient_clip_algorithm: GradClipAlgorithmType = GradClipAlgorithmType.NORM) -> None:
        """Clip, unscaling first where a fused optimizer would otherwise unscale in its kernel."""
        scaler = self.scaler
        if (clip_val and clip_val > 0 and scaler is not None and _optimizer_handles_unscaling(optimizer)
                and not scaler.is_unscaled(optimizer)):
            scaler.unscale_(optimizer)
        super().clip_gradients(optimizer, clip_val, gradient_clip_algorithm)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Decision, scaler state and counters: saved by Lightning under the class name."""
        scaler_state = self._scaler.state_dict() if self._scaler is not None else self._pending_scaler_state
        return {
            "format": _STATE_FORMAT,
            "decision": None if self.decision is None else self.decision.to_dict(),
            "scaler": scaler_state,
            "overflow_reports": list(self.overflow_reports),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`, or a bare ``GradScaler`` state."""
        if "decision" not in state_dict and "scale" in state_dict:
            self._load_scaler_state(state_dict)
            return
        if state_dict.get("decision"):
            self._loaded_decision = Decision.from_dict(state_dict["decision"])
        if state_dict.get("scaler"):
            self._load_scaler_state(state_dict["scaler"])
        self.overflow_reports = list(state_dict.get("overflow_reports", []))

    def _load_scaler_state(self, state: dict[str, Any]) -> None:
        self._pending_scaler_state = dict(state)
        self._calibrate_pending = False  # a restored scale is already calibrated
        if self._scaler is not None:
            self._scaler.load_state_dict(state)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Lightning restores ``checkpoint[type(self).__qualname__]``; else a subclass finds the
        ``"AutoPrecision"`` state, and Lightning's ``MixedPrecision`` checkpoints (``"MixedPrecision"``
        or the older ``"native_amp_scaling_state"``) give their loss scale."""
        if type(self).__qualname__ in checkpoint:
            return
        for key in ("AutoPrecision", "MixedPrecision", "native_amp_scaling_state"):
            if checkpoint.get(key):
                self.load_state_dict(checkpoint[key])
                return

    def teardown(self) -> None:
        """Close an unfinished probe, remove hooks and the ``keep_fp32`` wrappers."""
        trainer = self._trainer()
        if self._probe is not None and trainer is not None:
            _steps.finish_probe(self, trainer, collective=False)
        if self._phase_done and trainer is not None:
            self._end_phase(trainer)
        if self._tracer is not None:
            self._tracer.disarm()
        module = getattr(trainer, "lightning_module", None) if trainer is not None else None
        if module is not None and self.keep_fp32:
            remove_keep_fp32(module)
        super().teardown()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_trainer_ref": None, "_tracer": None, "_lag_snapshot": None}


def _is_fitting(trainer: Any) -> bool:
    state = getattr(trainer, "state", None)
    return getattr(state, "fn", None) == "fit"

