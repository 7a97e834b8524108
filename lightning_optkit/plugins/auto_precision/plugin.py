"""``AutoPrecision``: a Lightning precision plugin that picks the fastest safe precision.

Glue over the pure core in :mod:`lightning_optkit.precision`: each hook reads what it needs
(through the :class:`~lightning_optkit.plugins.auto_precision.trainer_link.TrainerLink`), calls the
:class:`~lightning_optkit.precision.controller.PrecisionController` (the decision) or the
:class:`~lightning_optkit.precision.loss_scaling.LossScaling` (the fp16 step) and writes back
``precision`` (Lightning's ``trainer.precision``). Setup errors come from ``convert_module`` and
``connect``; the decision is made on the first training batch (``convert_input``), after Lightning
restored any checkpoint; precision switches happen only after an optimizer step, so an
accumulation window never mixes two precisions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
from lightning.fabric.utilities.types import Steppable
from lightning.pytorch.plugins.precision.precision import Precision
from lightning.pytorch.utilities import GradClipAlgorithmType
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import nn
from torch.optim import Optimizer
from typing_extensions import override

from lightning_optkit.plugins.auto_precision.trainer_link import TrainerLink
from lightning_optkit.precision.controller import PrecisionController
from lightning_optkit.precision.decision import SIGNIFICAND_BITS, Decision, uses_scaler, validate_mode
from lightning_optkit.precision.hardware import HardwareFacts, probe_hardware
from lightning_optkit.precision.keep_fp32 import apply_keep_fp32, match_keep_fp32, remove_keep_fp32, validate_keep_fp32
from lightning_optkit.precision.loss_scaling import LossScaling
from lightning_optkit.precision.options import FallbackPolicy, ProbePlan, ScalerConfig, as_group
from lightning_optkit.precision.probe import StepClock
from lightning_optkit.precision.scaler import DynamicGradScaler
from lightning_optkit.precision.tf32 import Float32Policy

if TYPE_CHECKING:  # pragma: no cover
    import lightning.pytorch as pl

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
        probe_plan: The probe's warm-up steps, timed steps, rounds, margin over fp32 and early
            rejection (a ``ProbePlan``; null: its defaults).
        scaler: The fp16 loss scaler: initial scale, growth and backoff factors, growth interval,
            hysteresis, min and max scale (a ``ScalerConfig``; null: its defaults).
        calibrate: Lower the initial scale on the first fp16 batch (re-running its forward and
            backward) until its gradients are finite, so training does not start with skipped steps.
        fallback: Switch fp16 -> bf16 (where native) or fp32 mid-run when loss scaling collapses.
        fallback_policy: When loss scaling counts as collapsed: patience at ``min_scale``, skip
            rate, window (a ``FallbackPolicy``; null: its defaults).
        forensics: After a skipped step, trace the next overflowing step and name the module whose
            output or gradient became non-finite (no hooks while steps are clean).
        keep_fp32: Modules run outside autocast in fp32: names, type names (``"LayerNorm"``,
            ``"torch.nn.LayerNorm"``) or regular expressions over module names.
        strict_fp32: Keep fp32 matrix products and convolutions IEEE fp32 on GPUs with TF32
            (capability >= 8.0). By default the run's fp32 work (the probe's reference, a
            ``32-true`` choice, ``keep_fp32`` modules) uses TF32 matrix products there, unless
            ``torch.set_float32_matmul_precision`` was already set.
        verbose: Print the decision at fit start (rank zero).
    """

    def __init__(
        self,
        mode: Literal["auto", "bf16-mixed", "16-mixed", "32-true"] = "auto",
        probe: bool = True,
        probe_plan: ProbePlan | None = None,
        scaler: ScalerConfig | None = None,
        calibrate: bool = False,
        fallback: bool = True,
        fallback_policy: FallbackPolicy | None = None,
        forensics: bool = False,
        keep_fp32: Sequence[str | type[nn.Module]] | None = None,
        strict_fp32: bool = False,
        verbose: bool = True,
    ) -> None:
        self.mode = validate_mode(mode)
        self.probe = bool(probe)
        self.probe_plan = as_group("probe_plan", probe_plan, ProbePlan)
        self.scaler_config = as_group("scaler", scaler, ScalerConfig)
        self.calibrate = bool(calibrate)
        self.fallback = bool(fallback)
        self.fallback_policy = as_group("fallback_policy", fallback_policy, FallbackPolicy)
        self.forensics = bool(forensics)
        self.keep_fp32 = validate_keep_fp32(keep_fp32)
        self.verbose = bool(verbose)
        self.float32 = Float32Policy(strict_fp32=bool(strict_fp32))
        self.link = TrainerLink(verbose=self.verbose)
        self.controller = PrecisionController(
            mode, probe=self.probe, plan=self.probe_plan, fallback=self.fallback_policy if self.fallback else None,
            gather=self.link.gather, publish=self.link.publish)
        self.loss_scaling = LossScaling(self.scaler_config, calibrate=self.calibrate, forensics=self.forensics,
                                        note=self.controller.note, warn=rank_zero_warn)

        self.precision = "32-true"  # the precision in use now (read by Lightning as trainer.precision)
        self.device_type = "cpu"
        self._clock = StepClock()
        self._automatic = True
        if mode != "auto":  # known now: trainer.precision and the scaler are right before setup
            self.device_type = "cuda" if torch.cuda.is_available() else "cpu"
            self._activate(mode)

    # ------------------------------------------------------------------ public state
    @property
    def decision(self) -> Decision | None:
        """The precision decision (``None`` before the first training or evaluation step)."""
        return self.controller.decision

    @property
    def facts(self) -> HardwareFacts | None:
        """What the device can do (read at setup)."""
        return self.controller.facts

    @property
    def calibration(self) -> dict[str, Any] | None:
        """The first fp16 batch's calibration: ``initial_scale``, ``scale``, ``reruns``."""
        return self.loss_scaling.calibration

    @property
    def overflow_reports(self) -> list[dict[str, Any]]:
        """Forensics reports (dicts), at most 20, also saved in checkpoints."""
        return self.loss_scaling.overflows.reports

    @property
    def scaler(self) -> DynamicGradScaler | None:
        """The loss scaler while fp16 is in use, else ``None`` (Lightning's ``trainer.scaler``)."""
        return self.loss_scaling.scaler if uses_scaler(self.precision) else None

    @property
    def skipped_steps(self) -> int:
        """Optimizer updates skipped on inf/nan gradients so far (one device read)."""
        return self.loss_scaling.skipped_steps

    # ------------------------------------------------------------------ setup
    @override
    def convert_module(self, module: nn.Module) -> nn.Module:
        """Read the hardware, check a fixed mode against it and apply ``keep_fp32`` (setup)."""
        trainer = getattr(module, "_trainer", None)
        self.link.remember(trainer)
        device = trainer.strategy.root_device if trainer is not None else next(
            (p.device for p in module.parameters()), torch.device("cpu"))
        self.device_type = device.type
        if self.loss_scaling.drop_unused(self.device_type):  # built for a guessed device before setup
            self._activate(self.precision)
        facts = probe_hardware(device)
        for message in self.controller.set_hardware(facts):
            rank_zero_warn(f"AutoPrecision: {message}")
        self.controller.add_context(self.float32.apply(facts))
        if self.keep_fp32:
            matches = match_keep_fp32(module, self.keep_fp32)
            apply_keep_fp32(module, sorted({n for names in matches.values() for n in names}), self.device_type)
        self._automatic = bool(getattr(module, "automatic_optimization", True))
        if self.calibrate and trainer is not None and trainer.accumulate_grad_batches > 1:
            rank_zero_warn("AutoPrecision(calibrate=True) is ignored with accumulate_grad_batches > 1 "
                           "(re-running the last micro-batch would double its gradients)")
            self.loss_scaling.calibrate_pending = False
        return module

    @override
    def connect(self, model: nn.Module, optimizers: list[Optimizer],
                lr_schedulers: list[Any]) -> tuple[nn.Module, list[Optimizer], list[Any]]:
        """Refuse loss scaling for LBFGS (its closure runs many backward passes)."""
        if any(isinstance(opt, torch.optim.LBFGS) for opt in optimizers):
            if self.mode == "16-mixed":
                raise MisconfigurationException(
                    "AutoPrecision(mode='16-mixed') cannot scale the loss of LBFGS; use mode='auto', "
                    "'bf16-mixed' or '32-true'")
            self.controller.exclude("16-mixed", "LBFGS cannot use loss scaling: 16-mixed excluded")
        return model, optimizers, lr_schedulers

    # ------------------------------------------------------------------ the decision
    def _maybe_start(self) -> None:
        trainer = self.link.trainer
        if self.controller.started or trainer is None:
            return
        if self.link.other_search_running():
            return  # another component's search (the optimizer race) runs: decide on real steps
        if self.controller.facts is None:  # a strategy that never called convert_module
            self.convert_module(trainer.lightning_module)
        can_probe = self._automatic and len(getattr(trainer, "optimizers", [])) == 1
        precision = self.controller.start(world_size=self.link.world_size(), fitting=self.link.fitting(),
                                          can_probe=can_probe,
                                          deterministic=torch.are_deterministic_algorithms_enabled())
        if self.controller.decision is not None and self.controller.decision.resumed:
            self.loss_scaling.calibrate_pending = False
        if self.controller.probing:
            self.link.start_probe_phase()
        self._activate(precision)

    def _activate(self, precision: str) -> None:
        self.precision = precision
        if uses_scaler(precision):
            self.loss_scaling.use(self.device_type)
        else:
            self.loss_scaling.overflows.disarm()  # forensics trace fp16 steps only

    @override
    def convert_input(self, data: Any) -> Any:
        """Decide before the first training batch's hooks run; end the probe's search phase."""
        if getattr(self.link.trainer, "training", False):
            self.link.end_probe_phase()
            self._maybe_start()
        return data

    # ------------------------------------------------------------------ contexts
    @override
    def forward_context(self) -> contextlib.AbstractContextManager:
        """Autocast in the current precision (nothing for ``32-true``)."""
        dtype = _DTYPES.get(self.precision)
        if dtype is None:
            return contextlib.nullcontext()
        # The weight cast cache is safe when no optimizer step runs inside the autocast region
        # (automatic optimization steps after the training step returned).
        return torch.autocast(self.device_type, dtype=dtype, cache_enabled=self._automatic)

    @override
    @contextlib.contextmanager
    def train_step_context(self) -> Generator[None, None, None]:
        """Make the decision on the first training step, then autocast."""
        self._maybe_start()
        with self.forward_context():
            yield

    @override
    @contextlib.contextmanager
    def val_step_context(self) -> Generator[None, None, None]:
        """Autocast for validation (decides by rule when validating without fit)."""
        with self._eval_context():
            yield

    @override
    @contextlib.contextmanager
    def test_step_context(self) -> Generator[None, None, None]:
        """Autocast for testing."""
        with self._eval_context():
            yield

    @override
    @contextlib.contextmanager
    def predict_step_context(self) -> Generator[None, None, None]:
        """Autocast for prediction."""
        with self._eval_context():
            yield

    @contextlib.contextmanager
    def _eval_context(self) -> Generator[None, None, None]:
        if self.link.trainer is not None and not self.link.fitting():
            self._maybe_start()
        with self.forward_context():
            yield

    # ------------------------------------------------------------------ the step
    @override
    def pre_backward(self, tensor: torch.Tensor, module: pl.LightningModule) -> torch.Tensor:
        """Scale the loss while fp16 is in use."""
        scaler = self.scaler
        if scaler is not None:
            tensor = scaler.scale(tensor)
        return super().pre_backward(tensor, module)

    @override
    def optimizer_step(self, optimizer: Steppable, model: pl.LightningModule, closure: Callable[[], Any],
                       **kwargs: Any) -> Any:
        """Run the step in the current precision, then probe, monitor and log."""
        trainer = getattr(model, "trainer", None)
        self.link.remember(trainer)
        self._maybe_start()
        if self.controller.probing:
            self._clock.enter(self.device_type)
        losses: list[Any] = []

        def recording_closure() -> Any:
            result = closure()
            losses.append(result)
            return result

        if self.scaler is not None:
            if isinstance(optimizer, torch.optim.LBFGS):
                raise MisconfigurationException("AutoPrecision cannot scale the loss of LBFGS")
            output = self.loss_scaling.step(
                optimizer, recording_closure, lambda: self._after_closure(model, optimizer),
                automatic=model.automatic_optimization, named_params=model.named_parameters,
                global_step=getattr(trainer, "global_step", -1), **kwargs)
        else:
            output = super().optimizer_step(optimizer, model, recording_closure, **kwargs)
        if trainer is not None:
            self._after_step(trainer, losses[-1] if losses else None)
        return output

    def _after_step(self, trainer: Any, loss: Any) -> None:
        """Probe bookkeeping, the fallback/forensics monitor and interval logging."""
        if self.controller.probing:
            whole_step = getattr(trainer, "accumulate_grad_batches", 1) == 1
            seconds = self._clock.lap(self.device_type, whole_step=whole_step)
            finite = loss is None or bool(torch.isfinite(loss).all())
            scaler = self.scaler
            skipped = scaler is not None and scaler.stats()["consecutive_skips"] > 0
            self._activate(self.controller.record_step(seconds, finite, skipped))
            if not self.controller.probing:
                self.link.probe_phase_over()
            self._clock.mark_exit()
        every = int(getattr(trainer, "log_every_n_steps", 1) or 1)
        if (self.scaler is not None and (self.fallback or self.forensics)
                and self.loss_scaling.read_due(self.device_type, int(trainer.global_step), every)):
            stats = self.loss_scaling.observe(self.device_type, trainer.lightning_module)
            warning = None if stats is None else self.controller.watch(stats, int(trainer.global_step))
            if warning is not None:
                rank_zero_warn(warning)
                self.loss_scaling.overflows.disarm()
                self._activate(self.controller.precision)
        if self.link.log_due():
            scaler = self.scaler
            self.link.log_metrics({"amp/loss_scale": scaler.get_scale() if scaler is not None else 1.0,
                                   "amp/skipped_steps": float(self.skipped_steps),
                                   "amp/precision": float(SIGNIFICAND_BITS[self.precision])})

    @override
    def clip_gradients(self, optimizer: Optimizer, clip_val: int | float = 0.0,
                       gradient_clip_algorithm: GradClipAlgorithmType = GradClipAlgorithmType.NORM) -> None:
        """Clip, unscaling first where a fused optimizer would otherwise unscale in its kernel."""
        if clip_val and clip_val > 0 and self.scaler is not None:
            self.loss_scaling.unscale_for_clipping(optimizer)
        super().clip_gradients(optimizer, clip_val, gradient_clip_algorithm)

    # ------------------------------------------------------------------ checkpoints
    @override
    def state_dict(self) -> dict[str, Any]:
        """Decision, scaler state and counters: saved by Lightning under the class name."""
        return {
            "format": _STATE_FORMAT,
            "decision": None if self.decision is None else self.decision.to_dict(),
            "scaler": self.loss_scaling.state(),
            "overflow_reports": list(self.overflow_reports),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`, or a bare ``GradScaler`` state."""
        if "decision" not in state_dict and "scale" in state_dict:
            self.loss_scaling.load_state(state_dict)
            return
        if state_dict.get("decision"):
            self.controller.restore(state_dict["decision"])
        if state_dict.get("scaler"):
            self.loss_scaling.load_state(state_dict["scaler"])
        self.loss_scaling.overflows.reports = list(state_dict.get("overflow_reports", []))

    @override
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

    @override
    def teardown(self) -> None:
        """Close an unfinished probe, remove hooks and the ``keep_fp32`` wrappers."""
        trainer = self.link.trainer
        if self.controller.probing and trainer is not None:
            self._activate(self.controller.finish_probe(collective=False))
            self.link.probe_phase_over()
        self.link.end_probe_phase()
        self.loss_scaling.overflows.disarm()
        module = getattr(trainer, "lightning_module", None) if trainer is not None else None
        if module is not None and self.keep_fp32:
            remove_keep_fp32(module)
        self.float32.restore()
        super().teardown()
