"""Small models of each family for the optimizer tests (plain modules and LightningModules)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# the rules' first choice for dense, attention and plain CNN models: Prodigy where installed
DENSE_FIRST = "prodigy" if importlib.util.find_spec("prodigyopt") is not None else "adamw"

__all__ = [
    "mlp", "cnn_bn", "TinyTransformer", "TinyLSTM", "EmbeddingModel", "Factorization", "AllNorms",
    "NoOptimizerModel", "ClassifierModel", "class_loader", "mse_step", "cycling",
]


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def cnn_bn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4))


class TinyTransformer(nn.Module):
    def __init__(self, vocab: int = 10, dim: int = 16) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.block = nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.0, batch_first=True)
        self.head = nn.Linear(dim, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.tok(x)))


class TinyLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(6, 4)
        self.lstm = nn.LSTM(4, 8, batch_first=True)
        self.head = nn.Linear(8, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.emb(x))
        return self.head(out[:, -1])


class EmbeddingModel(nn.Module):
    """Two tables (most of the parameters) feeding a small dense head."""

    def __init__(self) -> None:
        super().__init__()
        self.users = nn.Embedding(200, 8)
        self.items = nn.EmbeddingBag(100, 8)
        self.head = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.users(x[:, 0]), self.items(x[:, 1:])], -1))


class Factorization(nn.Module):
    """Only tables: a rating is the dot product of a user row and an item row."""

    def __init__(self) -> None:
        super().__init__()
        self.users = nn.Embedding(200, 8)
        self.items = nn.Embedding(100, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.users(x[:, 0]) * self.items(x[:, 1])).sum(-1)


class AllNorms(nn.Module):
    """One layer of every normalisation type, plus a custom 1-D scale and a skipped name."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.bn1 = nn.BatchNorm1d(4)
        self.bn2 = nn.BatchNorm2d(4)
        self.bn3 = nn.BatchNorm3d(4)
        self.gn = nn.GroupNorm(2, 4)
        self.ln = nn.LayerNorm(4)
        self.rms = nn.RMSNorm(4)
        self.inorm = nn.InstanceNorm2d(4, affine=True)
        self.lin = nn.Linear(4, 4)
        self.scale = nn.Parameter(torch.ones(4))
        self.pos = nn.Parameter(torch.zeros(1, 3, 4))
        self.emb = nn.Embedding(5, 4)

    def no_weight_decay(self) -> set[str]:
        return {"pos"}


def class_loader(n: int = 96, features: int = 8, classes: int = 4, batch_size: int = 16,
                 seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = (x[:, :classes].argmax(1)).long()
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


class NoOptimizerModel(pl.LightningModule):
    """A classifier that defines no ``configure_optimizers`` at all."""

    def __init__(self, features: int = 8, classes: int = 4, n: int = 96) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, 32), nn.LayerNorm(32), nn.ReLU(),
                                 nn.Linear(32, classes))
        self.n = n

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def train_dataloader(self) -> DataLoader:
        return class_loader(self.n)


class ClassifierModel(NoOptimizerModel):
    """The same classifier with a plain ``configure_optimizers`` returning Adam."""

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def mse_step(model: nn.Module) -> Callable[[torch.optim.Optimizer, Any], float]:
    """One plain training step of ``model`` on an ``(x, y)`` batch with the MSE loss."""

    def step(opt: torch.optim.Optimizer, batch: Any) -> float:
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(batch[0]), batch[1])
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def cycling(batches: list[Any]) -> Callable[[], Any]:
    """``next_batch()`` over ``batches``, round and round."""
    state = {"i": -1}

    def next_batch() -> Any:
        state["i"] += 1
        return batches[state["i"] % len(batches)]

    return next_batch
