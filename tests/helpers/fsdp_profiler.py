"""Two-process run with BottleneckProfiler and WarmupDecay under FSDP (two GPUs) or DDP (two CPU processes).

``python tests/helpers/fsdp_profiler.py <out_dir> [fsdp|ddp]``: rank 1 has a slow callback hook.
Each rank writes ``rank<r>.json`` with the LRs it used and what its profiler measured; rank zero
writes the one report under ``<out_dir>/report``. Lightning runs FSDP on GPUs only; the same run
under DDP on CPU checks the script and its expectations where there is no GPU.
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
from lightning.pytorch.strategies import FSDPStrategy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from lightning_optkit import BottleneckProfiler, WarmupDecay  # noqa: E402
from tests.helpers.lr_recorder import LRRecorder  # noqa: E402
from tests.helpers.models import TinyModel  # noqa: E402

SLOW_MS = 15.0


class SlowHookOnRank1(pl.Callback):
    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_rank == 1:
            end = time.perf_counter() + SLOW_MS / 1e3
            while time.perf_counter() < end:
                pass


def main(out: str, strategy: str = "fsdp") -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    pl.seed_everything(0, verbose=False)
    recorder = LRRecorder()
    profiler = BottleneckProfiler(dirpath=os.path.join(out, "report"), sync_every_n_steps=10, console=False,
                                  warmup_steps=2)
    trainer = pl.Trainer(
        accelerator="gpu" if strategy == "fsdp" else "cpu", devices=2,
        strategy=FSDPStrategy(use_orig_params=True) if strategy == "fsdp" else "ddp", max_epochs=2,
        limit_train_batches=20, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[profiler, WarmupDecay(warmup=5, min_lr_ratio=0.1), SlowHookOnRank1(), recorder],
        default_root_dir=out,
    )
    trainer.fit(TinyModel(n_loader=320, batch_size=8))
    report = profiler.report or {}
    record = {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "lrs": recorder.lrs(),
        "steps_measured": report.get("steps_measured"),
        "findings": [f["code"] for f in report.get("findings", [])],
        "ranks": len(report.get("ranks") or []),
    }
    with open(os.path.join(out, f"rank{trainer.global_rank}.json"), "w") as handle:
        json.dump(record, handle)


if __name__ == "__main__":
    main(*sys.argv[1:3])
