"""BottleneckProfiler and WarmupDecay with a sharded model: FSDP on two GPUs (Lightning runs FSDP on GPUs
only); the same script under DDP on two CPU processes checks it and its expectations everywhere."""

from __future__ import annotations

import json
import os

import pytest
import torch

from tests.helpers.ddp_launch import run_ddp_script

_TWO_GPUS = torch.cuda.device_count() >= 2


@pytest.mark.slow
@pytest.mark.parametrize("strategy", [
    "ddp",
    pytest.param("fsdp", marks=pytest.mark.skipif(not _TWO_GPUS, reason="needs two CUDA GPUs (FSDP is GPU-only)")),
])
def test_report_names_the_slow_rank_and_schedules_agree(tmp_path, strategy: str) -> None:
    (r0, r1), _ = run_ddp_script("fsdp_profiler.py", tmp_path, strategy)
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["lrs"] == r1["lrs"] and len(r0["lrs"]) == 40  # 2 epochs x 20 batches, the same LR on both ranks
    assert max(lr[0] for lr in r0["lrs"]) == pytest.approx(1e-2) and r0["lrs"][-1][0] == pytest.approx(1e-3)
    assert r0["steps_measured"] == 37 and r0["ranks"] == 2  # 40 minus 2 warm-up steps and the FLOP count
    assert sorted(os.listdir(tmp_path / "report")) == ["bottlenecks.html", "bottlenecks.json", "bottlenecks.md"]
    report = json.loads((tmp_path / "report" / "bottlenecks.json").read_text())
    assert report["findings"][0]["code"] == "rank_imbalance"
    assert "rank 1" in json.dumps(report["findings"][0]).lower()
