"""All four components under Lightning's DDP (2 processes, gloo, CPU)."""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers.ddp_launch import run_ddp_script


@pytest.mark.slow
def test_two_processes_agree_and_one_report_names_the_slow_rank(tmp_path) -> None:
    (r0, r1), proc = run_ddp_script("ddp_optkit.py", tmp_path)
    assert r0["world_size"] == r1["world_size"] == 2
    assert len(r0["lrs"]) == 36
    assert r0["lrs"] == r1["lrs"]  # the same LRs on both ranks, update for update
    assert r0["optimizer"] == r1["optimizer"] and r0["optimizer_defaults"] == r1["optimizer_defaults"]
    assert r0["precision"] == r1["precision"]
    assert r0["weights_sum"] == pytest.approx(r1["weights_sum"], rel=1e-9)  # DDP kept them in sync
    files = sorted(os.listdir(tmp_path / "report"))
    assert files == ["bottlenecks.html", "bottlenecks.json", "bottlenecks.md"]  # one report, rank zero
    report = json.loads((tmp_path / "report" / "bottlenecks.json").read_text())
    assert len(report["ranks"]) == 2
    assert {"optimizer", "schedule", "precision"} <= set(report["decisions"])
    imbalance = [f for f in report["findings"] if f["code"] == "rank_imbalance"]
    assert imbalance, report["findings"]
    assert "rank 1" in json.dumps(imbalance[0]).lower()
    assert proc.stdout.count("lightning_optkit decisions") <= 1
