"""Diagnosis rules on hand-made measurements (GPU-only causes with injected device facts)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lightning_optkit.profiling.measurements import Measurements, RankSummary
from lightning_optkit.profiling.phases import CATEGORIES
from lightning_optkit.profiling.rules import RULES, THRESHOLDS, Finding, diagnose, rank_findings, severity_for
from lightning_optkit.profiling.sampling import DeviceInfo

A100 = DeviceInfo(type="cuda", name="NVIDIA A100", capability=(8, 0), total_memory=40 * 2**30,
                  precision="32-true", pin_memory=False, num_workers=4)
A100_BF16 = DeviceInfo(type="cuda", name="NVIDIA A100", capability=(8, 0), total_memory=40 * 2**30,
                       precision="bf16-mixed", pin_memory=False, num_workers=4)


def healthy(**changes: object) -> Measurements:
    """100 steps of 10 ms, 85 % compute."""
    m = Measurements(
        steps=100, wall_seconds=1.0, step_median=0.010, step_p90=0.011, step_max=0.02, batch_size=128,
        log_calls=100,
        phase_seconds={"forward": 0.35, "backward": 0.50, "optimizer_step": 0.04, "data_fetch": 0.02,
                       "logging": 0.02, "other": 0.03, "zero_grad": 0.01, "profiler": 0.01,
                       "callback:LearningRateMonitor.on_train_batch_start": 0.01, "host_to_device": 0.01},
        device=DeviceInfo(num_workers=0, pin_memory=False, total_memory=16 * 2**30),
        memory_samples=[(float(i * 10), 500e6 + (3e6 if i % 2 else 0)) for i in range(10)],
        memory_peak=503e6, memory_total=16 * 2**30,
    )
    for key, value in changes.items():
        setattr(m, key, value)
    return m


def shifted(phase: str, seconds: float, **changes: object) -> Measurements:
    m = healthy(**changes)
    m.phase_seconds = dict(m.phase_seconds)
    m.phase_seconds[phase] = m.phase_seconds.get(phase, 0.0) + seconds
    m.wall_seconds = sum(m.phase_seconds.values())
    return m


def _ranks() -> list[RankSummary]:
    base = [0.0] * len(CATEGORIES)
    fast, slow = list(base), list(base)
    fast[CATEGORIES.index("forward")] = slow[CATEGORIES.index("forward")] = 0.4
    fast[CATEGORIES.index("backward")] = 0.6  # waiting for the slow rank in the all-reduce
    slow[CATEGORIES.index("backward")] = 0.2
    slow[CATEGORIES.index("data_fetch")] = 0.4
    return [RankSummary(rank=0, steps=100, wall_seconds=1.0, step_median=0.01, category_seconds=fast),
            RankSummary(rank=1, steps=100, wall_seconds=1.0, step_median=0.01, category_seconds=slow,
                        top_phases=[("data_fetch", 0.4)])]


#: code -> measurements in which that cause is planted
PLANTED: dict[str, Callable[[], Measurements]] = {
    "dataloader": lambda: shifted("data_fetch", 0.6),
    "host_to_device": lambda: shifted("host_to_device", 0.5, device=A100_BF16),
    "host_sync": lambda: healthy(device=A100_BF16, deep_window={
        "steps": 3, "sync_calls": 30, "sync_calls_per_step": 10.0, "sync_ms": 9.0,
        "sync_sites": [{"where": "model.py(42): training_step", "calls": 30}]}),
    "small_steps": lambda: shifted("other", 1.0, step_median=0.0015),
    "no_mixed_precision": lambda: healthy(device=A100),
    "optimizer": lambda: shifted("optimizer_step", 0.6),
    "callback": lambda: shifted("callback:Slow.on_train_batch_end", 0.5,
                                locations={"callback:Slow.on_train_batch_end": "cb.py:7"}),
    "logging": lambda: shifted("logging", 0.5, log_calls=4000),
    "validation": lambda: shifted("validation", 0.8, validation_runs=20),
    "checkpoint": lambda: shifted("checkpoint", 0.5, checkpoint_saves=100),
    "rank_imbalance": lambda: healthy(ranks=_ranks()),
    "recompilation": lambda: healthy(recompiles=5, recompile_seconds=0.55, graphs=6),
    "memory_pressure": lambda: healthy(memory_peak=39 * 2**30, memory_total=40 * 2**30, alloc_retries=3,
                                       device=A100_BF16),
    "memory_growth": lambda: healthy(memory_samples=[(float(i * 10), 400e6 + i * 40e6) for i in range(12)]),
}


def test_every_rule_has_a_planted_case() -> None:
    assert set(PLANTED) == set(RULES) == set(THRESHOLDS)


@pytest.mark.parametrize("code", list(RULES))
def test_planted_cause_is_the_top_finding(code: str) -> None:
    findings = diagnose(PLANTED[code]())
    assert findings, code
    top = findings[0]
    assert top.code == code
    assert top.severity in ("medium", "high")
    assert 0.0 <= top.share <= 1.0
    assert top.evidence and top.recommendation and top.where


def test_healthy_run_has_no_serious_finding() -> None:
    assert [f for f in diagnose(healthy()) if f.severity != "low"] == []


@pytest.mark.parametrize("code", ["no_mixed_precision", "host_to_device"])
def test_gpu_only_causes_stay_quiet_on_cpu(code: str) -> None:
    m = PLANTED[code]()
    m.device = DeviceInfo()
    assert all(f.code != code or f.severity == "low" for f in diagnose(m))


def test_mixed_precision_already_on_is_not_a_finding() -> None:
    m = healthy(device=DeviceInfo(type="cuda", capability=(8, 0), precision="bf16-mixed"))
    assert "no_mixed_precision" not in [f.code for f in diagnose(m)]
    old = healthy(device=DeviceInfo(type="cuda", capability=(6, 1), precision="32-true"))
    assert "no_mixed_precision" not in [f.code for f in diagnose(old)]


def test_static_setting_alone_is_not_a_finding() -> None:
    # num_workers=0 and pin_memory=False with cheap data loading: nothing to report
    m = healthy(device=DeviceInfo(num_workers=0, pin_memory=False))
    assert "dataloader" not in [f.code for f in diagnose(m) if f.severity != "low"]


def test_host_sync_on_cpu_is_only_counted() -> None:
    m = PLANTED["host_sync"]()
    m.device = DeviceInfo()
    finding = next(f for f in diagnose(m) if f.code == "host_sync")
    assert finding.severity == "low"
    assert finding.evidence["sync_calls_per_step"] == 10.0
    assert finding.where == "model.py(42): training_step"


def test_mixture_is_ordered_by_share() -> None:
    m = shifted("data_fetch", 0.8)
    m.phase_seconds["callback:Slow.on_train_batch_end"] = 0.3
    m.wall_seconds = sum(m.phase_seconds.values())
    codes = [f.code for f in diagnose(m)]
    assert codes[:2] == ["dataloader", "callback"]


def test_rank_imbalance_names_the_slow_rank_and_cause() -> None:
    finding = next(f for f in diagnose(PLANTED["rank_imbalance"]()) if f.code == "rank_imbalance")
    assert finding.evidence["slow_rank"] == 1
    assert finding.evidence["cause"] == "data_fetch"
    assert finding.where == "rank 1: data_fetch"
    assert finding.share == pytest.approx(0.4)


def test_callback_finding_names_hook_and_file() -> None:
    finding = diagnose(PLANTED["callback"]())[0]
    assert finding.where == "callback Slow.on_train_batch_end (cb.py:7)"


def test_memory_findings_are_shares_of_memory() -> None:
    finding = diagnose(PLANTED["memory_growth"]())[0]
    assert finding.share_of == "memory"
    assert finding.evidence["growth_mb"] > 300
    flat = healthy(memory_samples=[(float(i), 400e6) for i in range(12)])
    assert "memory_growth" not in [f.code for f in diagnose(flat)]


def test_recompilation_cost_excludes_normal_step_time() -> None:
    finding = diagnose(PLANTED["recompilation"]())[0]
    assert finding.evidence["seconds"] == pytest.approx(0.5)
    assert finding.evidence["recompiles"] == 5


def test_severity_thresholds() -> None:
    t = THRESHOLDS["dataloader"]
    assert severity_for("dataloader", t.low - 1e-9) is None
    assert severity_for("dataloader", t.low) == "low"
    assert severity_for("dataloader", t.medium) == "medium"
    assert severity_for("dataloader", t.high) == "high"


def test_memory_findings_are_placed_by_severity_among_time_findings() -> None:
    def finding(code: str, severity: str, share: float, share_of: str = "time") -> Finding:
        return Finding(code, severity, share, share_of=share_of)  # type: ignore[arg-type]

    findings = [
        finding("memory_pressure", "medium", 0.92, "memory"),
        finding("logging", "low", 0.06),
        finding("memory_growth", "high", 0.30, "memory"),
        finding("callback", "medium", 0.12),
        finding("memory_growth", "low", 0.07, "memory"),
        finding("dataloader", "high", 0.40),
        finding("host_sync", "high", 0.16),
    ]
    ranked = [(f.code, f.severity) for f in rank_findings(findings)]
    # time by share; a memory finding just before the first time finding of lower severity
    assert ranked == [("dataloader", "high"), ("host_sync", "high"), ("memory_growth", "high"),
                      ("callback", "medium"), ("memory_pressure", "medium"), ("logging", "low"),
                      ("memory_growth", "low")]
    # shares of memory never outrank a larger time share of the same severity
    alone = rank_findings([finding("memory_pressure", "high", 0.99, "memory"), finding("dataloader", "high", 0.3)])
    assert [f.code for f in alone] == ["dataloader", "memory_pressure"]
    assert [f.code for f in rank_findings([finding("memory_growth", "high", 0.3, "memory"),
                                           finding("callback", "low", 0.04)])] == ["memory_growth", "callback"]



def test_small_steps_leaves_out_time_that_user_code_is_named_for() -> None:
    from lightning_optkit.profiling.rules import rule_small_steps

    phases = {"forward": 0.1, "backward": 0.1, "optimizer_step": 0.1}
    plain = healthy(step_median=0.001, phase_seconds=dict(phases, other=0.7))
    slow_logger = healthy(step_median=0.001, phase_seconds=dict(phases, **{"logger:Remote.log_metrics": 0.7}))
    slow_hook = healthy(step_median=0.001, phase_seconds=dict(phases, **{"hook:net.0.forward_hook": 0.7}))
    assert rule_small_steps(plain).code == "small_steps"
    assert rule_small_steps(slow_logger) is None and rule_small_steps(slow_hook) is None
