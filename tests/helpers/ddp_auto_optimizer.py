"""Run AutoOptimizer's race under 2-process DDP (gloo, CPU); each rank writes what it decided.

Usage: ``python tests/helpers/ddp_auto_optimizer.py OUT_DIR`` (launched by a test with a timeout).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import DDPStrategy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from lightning_optkit import AutoOptimizer  # noqa: E402
from tests.helpers.optim_models import NoOptimizerModel  # noqa: E402


def main(out_dir: str) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0)
    cb = AutoOptimizer(mode="race", candidates=["adamw", "sgd", "adagrad"], budget=32,
                       save_json=True)
    trainer = pl.Trainer(
        accelerator="cpu", devices=2,
        strategy=DDPStrategy(process_group_backend="gloo", timeout=timedelta(seconds=60)),
        max_epochs=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=out_dir, callbacks=[cb])
    model = NoOptimizerModel(n=192)
    trainer.fit(model)
    rank = trainer.global_rank
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
        json.dump({"choice": cb.choice.to_dict(), "optimizer": type(trainer.optimizers[0]).__name__,
                   "weights_sum": float(weights.double().sum()),
                   "world_size": trainer.world_size}, fh)


if __name__ == "__main__":
    main(sys.argv[1])
