"""Under 2-process DDP (gloo, CPU) all ranks run the same precision and skip the same steps."""

from __future__ import annotations

import pytest

from tests.helpers.ddp_launch import run_ddp_script


def _launch(tmp_path, scenario: str) -> tuple[list[dict], str]:
    ranks, proc = run_ddp_script("ddp_auto_precision.py", tmp_path, scenario, timeout=240)
    return ranks, proc.stdout + proc.stderr


@pytest.mark.slow
def test_ranks_with_different_hardware_use_the_lowest_common_precision(tmp_path):
    ranks, output = _launch(tmp_path, "differ")
    for rank in ranks:
        assert rank["world_size"] == 2
        assert rank["precision"] == rank["recorded"] == "32-true"
        assert rank["decision"]["candidates"] == ["32-true"]
    assert ranks[0]["decision"]["hardware"]["cpu_bf16_native"] is True
    assert ranks[1]["decision"]["hardware"]["cpu_bf16_native"] is False
    assert ranks[0]["weights_sum"] == pytest.approx(ranks[1]["weights_sum"], rel=1e-9)
    assert output.count("AutoPrecision: 32-true") == 1  # printed on rank zero only


@pytest.mark.slow
def test_probe_and_skips_agree_across_ranks(tmp_path):
    ranks, _ = _launch(tmp_path, "probe")
    d0, d1 = ranks[0]["decision"], ranks[1]["decision"]
    assert d0["source"] == "probe" and d0["candidates"] == ["16-mixed", "32-true"]
    for key in ("precision", "candidates", "measurements", "source"):
        assert d0[key] == d1[key], key  # measurements were merged: identical on both ranks
    # rank 1 alone made step 3's loss inf (an fp16 step of the probe): the all-reduced gradients
    # are inf on both ranks, so both skip it
    assert ranks[0]["skipped"] == ranks[1]["skipped"] == 1
    assert ranks[0]["weights_sum"] == pytest.approx(ranks[1]["weights_sum"], rel=1e-9)
