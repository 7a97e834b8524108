"""Under 2-process DDP (gloo, CPU) every rank makes the same decision and nobody hangs."""

from __future__ import annotations

import json

import pytest

from tests.helpers.ddp_launch import run_ddp_script


@pytest.mark.slow
def test_two_process_race_agrees_on_every_rank(tmp_path) -> None:
    ranks, proc = run_ddp_script("ddp_auto_optimizer.py", tmp_path, timeout=240)
    assert ranks[0]["world_size"] == 2
    c0, c1 = ranks[0]["choice"], ranks[1]["choice"]
    assert c0["mode"] == "race" and c0["race"]["winner"]
    for key in ("optimizer", "lr", "kernel", "race", "groups", "overhead_steps"):
        assert c0[key] == c1[key], key  # race losses were reduced: identical curves and winner
    assert ranks[0]["optimizer"] == ranks[1]["optimizer"]
    assert ranks[0]["weights_sum"] == pytest.approx(ranks[1]["weights_sum"], rel=1e-6)
    saved = json.loads((tmp_path / "auto_optimizer.json").read_text())  # written once, rank 0
    assert saved["race"]["winner"] == c0["race"]["winner"]
    assert proc.stdout.count("AutoOptimizer (race)") == 1  # printed on rank zero only
