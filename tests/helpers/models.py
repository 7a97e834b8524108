"""Small models and a trainer factory shared by the tests."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["TinyModel", "random_loader", "make_trainer"]


def random_loader(n: int = 64, batch_size: int = 8, features: int = 16, seed: int = 0) -> DataLoader:
    """A fixed regression data set of ``n`` samples, not shuffled."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=generator)
    y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


class TinyModel(pl.LightningModule):
    """Linear -> ReLU -> Linear regressor with two AdamW param groups (decay / no decay)."""

    def __init__(self, features: int = 16, hidden: int = 32, lr: float = 1e-2, n_loader: int = 64,
                 batch_size: int = 8, optimizer: str = "adamw") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y))

    def train_dataloader(self) -> DataLoader:
        return random_loader(self.hparams.n_loader, self.hparams.batch_size, self.hparams.features)

    def val_dataloader(self) -> DataLoader:
        return random_loader(32, 16, self.hparams.features, seed=1)

    def configure_optimizers(self):  # type: ignore[override]
        weights = [p for p in self.parameters() if p.ndim >= 2]
        biases = [p for p in self.parameters() if p.ndim < 2]
        groups = [{"params": weights, "weight_decay": 0.01}, {"params": biases, "weight_decay": 0.0}]
        if self.hparams.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=self.hparams.lr, momentum=0.9)
        return torch.optim.AdamW(groups, lr=self.hparams.lr)


def make_trainer(**overrides: Any) -> pl.Trainer:
    """A quiet CPU trainer: no logger, no checkpoints, no progress bar, no model summary."""
    options: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        deterministic=True,
    )
    options.update(overrides)
    return pl.Trainer(**options)
