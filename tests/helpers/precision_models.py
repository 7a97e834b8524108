"""Models, callbacks and hardware facts for the precision tests."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

from lightning_optkit.precision.hardware import HardwareFacts
from tests.helpers.lr_recorder import MemoryLogger
from tests.helpers.models import TinyModel

__all__ = [
    "CPU_AVX2",
    "CPU_BF16",
    "Amplify",
    "FusedInfModel",
    "InfModel",
    "PlantedModel",
    "RecordingLogger",
    "StepRecorder",
    "cuda_facts",
]

CPU_AVX2 = HardwareFacts(device_type="cpu", device_name="test-avx2", cpu_capability="AVX2")
CPU_BF16 = HardwareFacts(device_type="cpu", device_name="test-amx", cpu_capability="AVX512",
                         cpu_bf16_native=True, cpu_amx=True)


def cuda_facts(major: int, minor: int) -> HardwareFacts:
    return HardwareFacts(device_type="cuda", device_name=f"test-sm{major}{minor}",
                         cuda_capability=(major, minor), bf16_runs=(major, minor) >= (6, 0))


class InfModel(TinyModel):
    """TinyModel whose loss becomes ``inf`` on chosen global steps.

    Args:
        bad_steps: Global steps whose loss is multiplied by ``inf``.
        only_in_fp16: Inject only while the precision plugin runs ``16-mixed`` (an fp16-only
            overflow, as in real models whose activations exceed 65504).
        planted_scale: If set, multiply the first layer's weights by this (a layer that overflows
            fp16 in its forward pass but is fine in fp32).
        fused: ``None``: TinyModel's optimizer; ``True``/``False``: one AdamW group, fused or not.
    """

    def __init__(self, bad_steps: Any = (), only_in_fp16: bool = False, planted_scale: float | None = None,
                 fused: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bad_steps = set(bad_steps) if not isinstance(bad_steps, str) else bad_steps
        self.only_in_fp16 = only_in_fp16
        self.fused = fused
        if planted_scale is not None:
            with torch.no_grad():
                self.net[0].weight.mul_(planted_scale)

    def _is_bad(self) -> bool:
        if self.only_in_fp16 and self.trainer.precision_plugin.precision != "16-mixed":
            return False
        return self.bad_steps == "all" or self.trainer.global_step in self.bad_steps

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        return loss * float("inf") if self._is_bad() else loss

    def configure_optimizers(self):  # type: ignore[override]
        if self.fused is not None:  # one group, fused or not (comparable numerics)
            return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, fused=self.fused)
        return super().configure_optimizers()


class FusedInfModel(InfModel):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fused=True, **kwargs)


class StepRecorder(Callback):
    """After every training batch: the loss scale, skipped steps, precision and search phase."""

    def __init__(self) -> None:
        self.scales: list[float | None] = []
        self.skipped: list[int] = []
        self.precisions: list[str] = []
        self.phases: list[str | None] = []
        self.start_phases: list[str | None] = []
        self.start_precisions: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        from lightning_optkit._trainer import current_search_phase

        self.start_phases.append(current_search_phase(trainer))
        self.start_precisions.append(trainer.precision_plugin.precision)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        from lightning_optkit._trainer import current_search_phase

        plugin = trainer.precision_plugin
        scaler = plugin.scaler
        self.scales.append(None if scaler is None else scaler.get_scale())
        self.skipped.append(plugin.skipped_steps)
        self.precisions.append(plugin.precision)
        self.phases.append(current_search_phase(trainer))


class RecordingLogger(MemoryLogger):
    """Keeps every ``log_metrics`` call (as ``metrics``) and every ``log_hyperparams`` call."""

    def __init__(self) -> None:
        super().__init__()
        self.hparams_calls: list[dict[str, Any]] = []

    @property
    def metrics(self) -> list[tuple[int | None, dict[str, float]]]:
        return self.calls

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        self.hparams_calls.append(dict(params) if isinstance(params, dict) else dict(vars(params)))


class Amplify(torch.nn.Module):
    """Multiplies by ``factor`` and divides again: exact in fp32, ``inf`` in fp16 for |x| > 65504/factor."""

    def __init__(self, factor: float = 1e5) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.factor) / self.factor


class PlantedModel(InfModel):
    """TinyModel with an :class:`Amplify` layer at ``net.1`` that overflows only in fp16."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        hidden = self.hparams.hidden
        self.net = torch.nn.Sequential(torch.nn.Linear(self.hparams.features, hidden), Amplify(),
                                       torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
