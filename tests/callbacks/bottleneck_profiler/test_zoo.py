"""The planted-bottleneck zoo: every planted cause is the top finding, clean twins get nothing serious.

Each scenario runs in a fresh process (``tests/helpers/profiler_zoo.py``): the single-process ones in
forked children of one runner, two at a time; the two-process DDP one as its own script (Lightning
launches the second rank) alongside. Everything has a timeout, so a hang fails instead of blocking.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.profiler_zoo import DDP_SCENARIOS, EXPECTED, SCENARIOS

ZOO = Path(__file__).resolve().parents[2] / "helpers" / "profiler_zoo.py"
TIMEOUT = 240


def _report(root: Path, scenario: str, failure: str) -> dict[str, Any] | str:
    report = root / scenario / "bottlenecks.json"
    if not report.exists():
        return failure or "no report written"
    return json.loads(report.read_text())


def _subprocess(args: list[str]) -> str:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    try:
        proc = subprocess.run([sys.executable, str(ZOO), *args], capture_output=True, text=True, timeout=TIMEOUT,
                              env=env)
    except subprocess.TimeoutExpired:
        return f"timed out after {TIMEOUT} s"
    return "" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr[-2000:]}"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("zoo")
    single = [s for s in SCENARIOS if s not in DDP_SCENARIOS]
    many = _subprocess(["--many", str(root), *single])
    # the two DDP ranks get the two cores to themselves: their timings are compared with each other
    failures = {s: _subprocess([s, str(root / s)]) for s in DDP_SCENARIOS}
    return {s: _report(root, s, failures.get(s) or many) for s in SCENARIOS}


def _serious(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["severity"] in ("medium", "high")]


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_zoo_scenario(zoo: dict[str, Any], scenario: str) -> None:
    report = zoo[scenario]
    assert isinstance(report, dict), report
    expected = EXPECTED[scenario]
    codes = [f["code"] for f in report["findings"]]
    if not expected:
        assert _serious(report) == [], report["findings"]
        return
    assert codes[: len(expected)] == expected, report["findings"]
    for finding in report["findings"][: len(expected)]:
        assert finding["severity"] in ("medium", "high"), finding
        assert finding["recommendation"]


@pytest.mark.slow
def test_zoo_findings_name_the_culprit(zoo: dict[str, Any]) -> None:
    callback = zoo["slow_callback"]["findings"][0]
    assert callback["where"].startswith("callback SlowHook.on_train_batch_end (profiler_zoo.py:")
    imbalance = zoo["ddp_slow_rank"]["findings"][0]
    assert imbalance["evidence"]["slow_rank"] == 1
    assert imbalance["evidence"]["cause"] == "callbacks"
    assert "SlowHook.on_train_batch_end" in imbalance["where"]
    assert [r["rank"] for r in zoo["ddp_slow_rank"]["ranks"]] == [0, 1]
    assert zoo["recompile"]["compile"]["recompiles"] >= 3
    assert zoo["compiled_clean"]["compile"]["recompiles"] == 0
    assert zoo["val_often"]["findings"][0]["evidence"]["runs"] >= 10
    assert zoo["ckpt_often"]["findings"][0]["evidence"]["saves"] >= 30
    assert zoo["heavy_log"]["findings"][0]["evidence"]["calls_per_step"] == pytest.approx(40, abs=1)


@pytest.mark.slow
def test_zoo_reports_are_small_and_complete(zoo: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> None:
    report = zoo["clean"]
    for key in ("version", "steps_measured", "step_time", "phases", "throughput", "memory", "ranks", "findings",
                "decisions"):
        assert key in report
    assert report["steps_measured"] == 37  # 40 batches - 2 warm-up steps - 1 FLOP-count step
    assert set(report["step_time"]) == {"median", "p90", "max"}
    assert report["throughput"]["batch_size"] == 512
    assert report["throughput"]["flops_per_step"] > 0
    assert sum(p["share"] for p in report["phases"].values()) == pytest.approx(1.0, abs=0.01)
    assert len(json.dumps(report)) < 64_000
