"""A LightningDataModule and a classifier for scikit-learn's digits (8x8 images, 10 classes).

The data ships inside scikit-learn, so the demo needs no download. ``scikit-learn`` is imported
only when the data is prepared (install the ``demo`` extra).
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset, random_split
from torchmetrics.classification import MulticlassAccuracy

__all__ = ["DigitsDataModule", "DigitsClassifier", "EpochShuffleSampler"]


class EpochShuffleSampler(Sampler[int]):
    """Shuffles with ``seed + epoch``, so each epoch's order is the same after a resume.

    Lightning calls ``set_epoch`` on a sampler that has it at the start of every epoch.
    """

    def __init__(self, length: int, seed: int = 0) -> None:
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())

    def __len__(self) -> int:
        return self.length


def _load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The digits demo needs scikit-learn: pip install 'lightning-optkit[demo]'"
        ) from err
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images, torch.tensor(data.target, dtype=torch.long)


class DigitsDataModule(pl.LightningDataModule):
    """scikit-learn's 1,797 digits as 1x8x8 images in [0, 1], split into train and validation.

    Args:
        batch_size: Samples per training batch.
        val_fraction: Share of the data held out for validation, in (0, 1).
        num_workers: DataLoader worker processes.
        seed: Seed of the train/validation split.
    """

    def __init__(
        self, batch_size: int = 64, val_fraction: float = 0.2, num_workers: int = 0, seed: int = 0
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction={val_fraction!r} must lie in (0, 1), such as 0.2")
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.num_workers = num_workers
        self.seed = seed
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels = _load_digits()
        dataset = TensorDataset(images, labels)
        n_val = int(round(len(dataset) * self.val_fraction))
        generator = torch.Generator().manual_seed(self.seed)
        self.train_set, self.val_set = random_split(
            dataset, [len(dataset) - n_val, n_val], generator=generator
        )

    def train_dataloader(self) -> DataLoader:
        sampler = EpochShuffleSampler(len(self.train_set), seed=self.seed)
        return DataLoader(
            self.train_set, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=256, num_workers=self.num_workers)


class DigitsClassifier(pl.LightningModule):
    """A small classifier for the digits: an MLP, or a CNN with BatchNorm.

    Args:
        arch: ``"mlp"`` (two hidden layers with LayerNorm) or ``"cnn"`` (two conv blocks
            with BatchNorm).
        hidden: Width of the hidden layers.
        lr: Learning rate of the default AdamW optimizer (the schedule's peak).
        weight_decay: Decoupled weight decay of the default optimizer.
        optimizer: ``"adamw"`` or ``"sgd"`` (Nesterov, momentum 0.9) in
            ``configure_optimizers``; ``"none"`` defines no optimizer, for a callback that
            chooses it.
    """

    def __init__(
        self,
        arch: Literal["mlp", "cnn"] = "mlp",
        hidden: int = 128,
        lr: float = 3e-3,
        weight_decay: float = 0.01,
        optimizer: Literal["adamw", "sgd", "none"] = "adamw",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if arch == "mlp":
            self.net = nn.Sequential(
                nn.Flatten(),
                nn.Linear(64, hidden),
                nn.LayerNorm(hidden),
                nn.GELU(),
                nn.Linear(hidden, hidden),
                nn.GELU(),
                nn.Linear(hidden, 10),
            )
        elif arch == "cnn":
            self.net = nn.Sequential(
                nn.Conv2d(1, 32, 3, padding=1),
                nn.BatchNorm2d(32),
                nn.ReLU(),
                nn.Conv2d(32, 64, 3, padding=1),
                nn.BatchNorm2d(64),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(2),
                nn.Flatten(),
                nn.Linear(256, 10),
            )
        else:
            raise ValueError(f"arch={arch!r} is not one of 'mlp', 'cnn'")
        self.train_acc = MulticlassAccuracy(num_classes=10)
        self.val_acc = MulticlassAccuracy(num_classes=10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = nn.functional.cross_entropy(logits, y)
        self.train_acc(logits, y)
        self.log("train_loss", loss, prog_bar=True)
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_acc(logits, y)
        self.log("val_loss", nn.functional.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", self.val_acc, prog_bar=True)

    def configure_optimizers(self) -> Any:
        name = self.hparams.optimizer
        if name == "none":
            return None
        decay, no_decay = [], []
        for param in self.parameters():
            (decay if param.ndim >= 2 else no_decay).append(param)
        groups = [
            {"params": decay, "weight_decay": self.hparams.weight_decay, "name": "decay"},
            {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
        ]
        if name == "sgd":
            return torch.optim.SGD(groups, lr=self.hparams.lr, momentum=0.9, nesterov=True)
        return torch.optim.AdamW(groups, lr=self.hparams.lr)
