"""Run AutoPrecision under 2-process DDP (gloo, CPU); each rank writes what it decided.

Usage: ``python tests/helpers/ddp_auto_precision.py OUT_DIR SCENARIO`` (launched by a test with a
timeout). Scenarios:

* ``differ``: rank 0 reports a CPU with native bf16, rank 1 one without; ``mode="auto"``.
* ``probe``: both ranks report a CUDA 7.5 device (fp16 and fp32 plausible), the probe runs
  (fp16 on CPU autocast with the CPU scaler) and rank 1 alone returns an ``inf`` loss on step 3
  (an fp16 probe step).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from typing import Any
from unittest import mock

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import DDPStrategy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from lightning_optkit._trainer import run_notes
from lightning_optkit.precision import AutoPrecision, ProbePlan, ScalerConfig
from tests.helpers.models import TinyModel
from tests.helpers.precision_models import CPU_AVX2, CPU_BF16, cuda_facts


class RankModel(TinyModel):
    def __init__(self, inf_rank: int | None = None, inf_step: int = 3) -> None:
        super().__init__(n_loader=128)
        self.inf_rank, self.inf_step = inf_rank, inf_step

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        if self.global_rank == self.inf_rank and self.trainer.global_step == self.inf_step:
            loss = loss * float("inf")
        return loss


def main(out_dir: str, scenario: str) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0)
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    if scenario == "differ":
        facts = CPU_BF16 if rank == 0 else CPU_AVX2
        plugin = AutoPrecision()
        model = RankModel()
    else:
        facts = cuda_facts(7, 5)
        plugin = AutoPrecision(probe_plan=ProbePlan(warmup_steps=1, steps=2, rounds=2),
                               scaler=ScalerConfig(init_scale=256.0))
        model = RankModel(inf_rank=1)
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, plugins=[plugin],
        strategy=DDPStrategy(process_group_backend="gloo", timeout=timedelta(seconds=60)),
        max_steps=8, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=out_dir)
    with mock.patch("lightning_optkit.plugins.auto_precision.plugin.probe_hardware", return_value=facts):
        trainer.fit(model)
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    with open(os.path.join(out_dir, f"rank{trainer.global_rank}.json"), "w") as fh:
        json.dump({"decision": plugin.decision.to_dict(), "precision": plugin.precision,
                   "skipped": plugin.skipped_steps, "weights_sum": float(weights.double().sum()),
                   "recorded": run_notes(trainer).decisions["precision"]["precision"],
                   "world_size": trainer.world_size}, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
