"""Small modules that build their own optimizers (or none), for the user-respect tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["AdamStepLR", "NoConfigure", "TinyGAN", "loader"]


def loader(n: int = 64, dim: int = 8, batch: int = 16) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, dim, generator=g)
    y = (x[:, :1] * 2 - x[:, 1:2]).detach()
    return DataLoader(TensorDataset(x, y), batch_size=batch)


class NoConfigure(LightningModule):
    """A regression MLP that defines no ``configure_optimizers``."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, 16), nn.ReLU(), nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.net(x), y)

    def train_dataloader(self):
        return loader()


class AdamStepLR(NoConfigure):
    """The user's explicit choice: Adam 1e-3 with a StepLR."""

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=1e-3)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)}


class TinyGAN(LightningModule):
    """Two optimizers stepped by hand (manual optimization)."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.gen = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, dim))
        self.disc = nn.Sequential(nn.Linear(dim, 16), nn.ReLU(), nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        real, _ = batch
        opt_g, opt_d = self.optimizers()
        z = torch.randn(real.shape[0], 4, generator=torch.Generator().manual_seed(batch_idx))
        fake = self.gen(z)
        d_loss = F.softplus(-self.disc(real)).mean() + F.softplus(self.disc(fake.detach())).mean()
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        g_loss = F.softplus(-self.disc(fake)).mean()
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()

    def configure_optimizers(self):
        return (torch.optim.Adam(self.gen.parameters(), lr=2e-4, betas=(0.5, 0.999)),
                torch.optim.SGD(self.disc.parameters(), lr=1e-2))

    def train_dataloader(self):
        return loader()
