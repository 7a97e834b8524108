"""Callbacks and loggers that record what the tests need to compare."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger

__all__ = ["LRRecorder", "MemoryLogger", "CrashAt", "AddGroupAt"]


class LRRecorder(Callback):
    """Records ``(global_step, optimizer index, [lr of each group])`` at every optimizer update.

    Put it AFTER the callback under test: it reads the LR right before the update.
    """

    def __init__(self) -> None:
        self.records: list[tuple[int, int, list[float]]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        index = next(i for i, opt in enumerate(trainer.optimizers) if opt is optimizer)
        self.records.append((trainer.global_step, index, [g["lr"] for g in optimizer.param_groups]))

    def lrs(self, index: int = 0) -> list[list[float]]:
        return [lrs for _, i, lrs in self.records if i == index]


class MemoryLogger(Logger):
    """A logger that keeps every ``log_metrics`` call in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int | None, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        self.hparams = params

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.calls.append((step, dict(metrics)))


class CrashAt(Callback):
    """Raises ``RuntimeError`` at the start of the batch after ``step`` optimizer steps."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"planted crash at step {self.step}")


class AddGroupAt(Callback):
    """Unfreezes a module at a given step by adding it as a new param group (fine-tuning)."""

    def __init__(self, step: int, module_name: str, lr: float) -> None:
        self.step, self.module_name, self.lr = step, module_name, lr
        self.added = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.added and trainer.global_step >= self.step:
            module: torch.nn.Module = pl_module.get_submodule(self.module_name)
            for p in module.parameters():
                p.requires_grad_(True)
            trainer.optimizers[0].add_param_group({"params": list(module.parameters()), "lr": self.lr})
            self.added = True
