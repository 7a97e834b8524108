"""The GPU benchmark scripts stay runnable: a CPU dry run of ``precision_gpu.py`` and the plan of
``gpu_check.py`` (every step bounded, seven minutes in all)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_plan_fits_in_seven_minutes(tmp_path) -> None:
    plan = _load("gpu_check").steps(str(tmp_path), quick=False)
    names = [name for name, _, _ in plan]
    assert names == ["environment", "gpu_tests", "demo", "precision", "profiler"]
    assert sum(limit for _, _, limit in plan) <= 7 * 60
    assert any("-m" in cmd and "gpu" in cmd for _, cmd, _ in plan)


@pytest.mark.slow
def test_precision_gpu_smoke_run_on_cpu(tmp_path) -> None:
    out = tmp_path / "precision.json"
    proc = subprocess.run([sys.executable, str(BENCH / "precision_gpu.py"), "--smoke", "--models", "gpt",
                           "--steps", "6", "--rounds", "1", "--warmup", "2", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "RATIO precision_gpu_gpt_1000" in proc.stdout
    (result,) = json.loads(out.read_text())
    assert set(result["steady_ms"]) == {"32-true", "16-mixed", "bf16-mixed", "AutoPrecision"}
    assert result["chosen"][0] in {"32-true", "bf16-mixed", "16-mixed"}


def test_profiler_overhead_sizes_gpu_models_by_their_gpu_work() -> None:
    overhead = _load("profiler_overhead")
    asked: list[tuple[int, int, float]] = []

    def batch_for(features: int, hidden: int, target_ms: float) -> int:
        asked.append((features, hidden, target_ms))
        return int(256 * target_ms)

    kinds, models = overhead.plan("cuda", quick=True, rounds=None, batch_for=batch_for)
    assert kinds == ("none", "simple", "bottleneck")
    assert [m[2] for m in models.values()] == [256, 1024] and [a[2] for a in asked] == [1.0, 4.0]
    assert list(models) == ["~1 ms step", "~4 ms step"]
    kinds, _ = overhead.plan("cuda", quick=False, rounds=2, batch_for=batch_for)
    assert kinds == ("none", "simple", "bottleneck", "skip_hooks")
    kinds, models = overhead.plan("cpu", quick=True, rounds=None)
    assert "pytorch" in kinds and "skip_hooks" in kinds and list(models) == ["~1 ms step", "~5 ms step"]


def test_profiler_overhead_device_cuda_without_a_gpu_is_a_clear_error(monkeypatch, capsys) -> None:
    overhead = _load("profiler_overhead")
    monkeypatch.setattr(overhead.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["profiler_overhead.py", "--device", "cuda", "--quick"])
    with pytest.raises(SystemExit) as exit_info:
        overhead.main()
    assert exit_info.value.code == 2
    assert "--device cuda: no CUDA device is available" in capsys.readouterr().err
