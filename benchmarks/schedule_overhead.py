"""Step-time cost of WarmupDecay against the same schedule as a step-interval LambdaLR.

Both arms train the same tiny model for the same steps; the arms are interleaved round by round in
one process so machine noise hits both alike. Prints the median ratio of per-step time
(WarmupDecay / LambdaLR). Target: at most 1.02.

    python benchmarks/schedule_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_optkit import WarmupDecay
from lightning_optkit.schedules import build_schedule

WARMUP, DECAY, FLOOR = 20, "cosine", 0.1


class Tiny(pl.LightningModule):
    def __init__(self, steps: int, use_lambda: bool) -> None:
        super().__init__()
        self.steps, self.use_lambda = steps, use_lambda
        self.net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(self.steps * 16, 32, generator=g)
        return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=16)

    def configure_optimizers(self):
        groups = [
            {"params": [p for p in self.parameters() if p.ndim > 1], "weight_decay": 0.01},
            {"params": [p for p in self.parameters() if p.ndim <= 1], "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=1e-3)
        if not self.use_lambda:
            return opt
        sched = build_schedule(warmup_steps=WARMUP, total_steps=self.steps, decay=DECAY, min_lr_ratio=FLOOR)
        lambda_lr = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=sched)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": lambda_lr, "interval": "step"}}


class StepTimer(pl.Callback):
    """Wall time per training batch, from one batch start to the next (warm-up batches dropped)."""

    def __init__(self, skip: int = 10) -> None:
        self.skip, self.times, self._t = skip, [], None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = time.perf_counter()
        if self._t is not None and batch_idx > self.skip:
            self.times.append(now - self._t)
        self._t = now


def run(steps: int, arm: str) -> float:
    timer = StepTimer()
    callbacks = [timer] if arm == "lambda" else [WarmupDecay(warmup=WARMUP, decay=DECAY, min_lr_ratio=FLOOR,
                                                                 verbose=False, log_lr=False), timer]
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
    )
    trainer.fit(Tiny(steps, use_lambda=arm == "lambda"))
    return statistics.median(timer.times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and steps")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    rounds, steps = (5, 200) if args.quick else (11, 400)
    ratios, base_times = [], []
    for r in range(rounds):
        arms = ["lambda", "callback"] if r % 2 == 0 else ["callback", "lambda"]
        times = {arm: run(steps, arm) for arm in arms}
        ratios.append(times["callback"] / times["lambda"])
        base_times.append(times["lambda"])
    ratio = statistics.median(ratios)
    print(f"median step time with LambdaLR: {statistics.median(base_times) * 1e3:.3f} ms over {rounds} rounds")
    print(f"RATIO schedule_overhead WarmupDecay/LambdaLR step time = {ratio:.3f} (target <= 1.02)")


if __name__ == "__main__":
    main()
