"""Two-process DDP (gloo, CPU) run with all four components through OptKit.

``python tests/helpers/ddp_optkit.py <out_dir>``: rank 1 has a planted slow data pipeline. Each
rank writes ``rank<r>.json`` with the LRs it used, its optimizer and its precision; rank zero's
BottleneckProfiler writes the one report under ``<out_dir>/report``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader
from torch.utils.data.dataloader import default_collate

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from lightning_optkit import OptKit  # noqa: E402
from lightning_optkit.demo import DigitsClassifier, DigitsDataModule  # noqa: E402
from tests.helpers.lr_recorder import LRRecorder  # noqa: E402

SLOW_MS = 15.0


def slow_collate_on_rank1(batch):
    if int(os.environ.get("LOCAL_RANK", "0")) == 1:
        end = time.perf_counter() + SLOW_MS / 1e3
        while time.perf_counter() < end:
            pass
    return default_collate(batch)


class SlowRankData(DigitsDataModule):
    def train_dataloader(self) -> DataLoader:
        loader = super().train_dataloader()
        return DataLoader(loader.dataset, batch_size=self.batch_size, sampler=loader.sampler,
                          collate_fn=slow_collate_on_rank1)


def main(out: str) -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    pl.seed_everything(0, verbose=False)
    recorder = LRRecorder()
    kit = OptKit(
        optimizer={"mode": "rules"},
        schedule={"warmup": "10%", "min_lr_ratio": 0.1},
        precision={"mode": "auto"},
        profiler={"dirpath": os.path.join(out, "report"), "sync_every_n_steps": 10, "console": False},
    )
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_epochs=3, limit_train_batches=12,
        limit_val_batches=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[kit, recorder], default_root_dir=out,
    )
    trainer.fit(DigitsClassifier(optimizer="none", hidden=64), SlowRankData(batch_size=32))
    optimizer = trainer.optimizers[0]
    record = {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "lrs": recorder.lrs(),
        "optimizer": type(optimizer).__name__,
        "optimizer_defaults": {k: v for k, v in optimizer.defaults.items() if isinstance(v, (int, float, str, bool))},
        "precision": trainer.precision_plugin.precision,
        "weights_sum": float(sum(p.detach().double().sum() for p in trainer.lightning_module.parameters())),
    }
    with open(os.path.join(out, f"rank{trainer.global_rank}.json"), "w") as handle:
        json.dump(record, handle)


if __name__ == "__main__":
    main(sys.argv[1])
