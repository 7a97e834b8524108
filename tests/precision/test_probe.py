"""The probe's schedule and bookkeeping (pure), early rejection included."""

from __future__ import annotations

import pytest

from lightning_optkit.precision.decision import choose_measured
from lightning_optkit.precision.options import ProbePlan
from lightning_optkit.precision.probe import ProbeRecorder, StepClock, probe_schedule

BF16 = ("bf16-mixed", "32-true")
FP16 = ("16-mixed", "32-true")


def test_schedule_is_abba_with_fp32_first_and_warmups():
    plan = ProbePlan(warmup_steps=2, steps=4, rounds=2)
    assert probe_schedule(plan, ("bf16-mixed", "32-true")) == [
        ("32-true", False), ("32-true", False), ("32-true", True), ("32-true", True),
        ("bf16-mixed", False), ("bf16-mixed", False), ("bf16-mixed", True), ("bf16-mixed", True),
        ("bf16-mixed", True), ("bf16-mixed", True),  # same precision continues: no warm-up
        ("32-true", False), ("32-true", True), ("32-true", True),
    ]
    assert probe_schedule(ProbePlan(warmup_steps=1, steps=3, rounds=2), ("16-mixed", "32-true")).count(
        ("16-mixed", True)) == 3


def _feed(recorder: ProbeRecorder, times: dict[str, float], finite=lambda name, i: True) -> list[str]:
    ran = []
    while (name := recorder.current()) is not None:
        ran.append(name)
        recorder.record(times[name], finite(name, len(ran)))
    return ran


def test_measurements_are_medians_of_timed_steps_only():
    recorder = ProbeRecorder(ProbePlan(warmup_steps=1, steps=2, rounds=1, reject_factor=1e9), BF16)
    ran = _feed(recorder, {"32-true": 0.010, "bf16-mixed": 0.005})
    assert ran == ["32-true"] * 3 + ["bf16-mixed"] * 3
    m = recorder.measurements()
    assert m["32-true"].median_ms == pytest.approx(10.0) and m["32-true"].steps == 2
    assert m["bf16-mixed"].median_ms == pytest.approx(5.0)
    assert choose_measured(["bf16-mixed", "32-true"], m)[0] == "bf16-mixed"


def test_skipped_and_untimed_steps_are_not_measured():
    recorder = ProbeRecorder(ProbePlan(warmup_steps=1, steps=2, rounds=1), FP16)
    recorder.record(None, True)  # the run's first step has no previous step to time from
    recorder.record(0.01, True)
    recorder.record(0.01, True)
    recorder.record(0.002, True)  # 16-mixed warm-up
    recorder.record(0.001, True, skipped=True)
    recorder.record(0.004, False)
    m = recorder.measurements()
    assert m["32-true"].steps == 2 and m["16-mixed"].steps == 1  # the skipped step is not used
    assert m["16-mixed"].finite is False and recorder.done


def test_a_hopeless_candidate_is_rejected_early():
    # bf16 emulated on an AVX2 CPU: ~19x slower per step
    recorder = ProbeRecorder(ProbePlan(warmup_steps=2, steps=6, rounds=2), BF16)
    ran = _feed(recorder, {"32-true": 0.0088, "bf16-mixed": 0.164})
    # fp32: 2 warm-up + 3 timed; bf16: its 2 warm-up steps pay one-off costs and are never judged,
    # the next two (timed) are; then fp32 finishes its round
    assert ran == ["32-true"] * 5 + ["bf16-mixed"] * 4 + ["32-true"] * 4
    assert "bf16-mixed: rejected early" in recorder.rejected["bf16-mixed"]
    m = recorder.measurements()
    assert m["bf16-mixed"].median_ms >= 2 * 8.8 and m["bf16-mixed"].steps == 2
    assert choose_measured(["bf16-mixed", "32-true"], m)[0] == "32-true"


def test_encode_decode_round_trip():
    recorder = ProbeRecorder(ProbePlan(warmup_steps=1, steps=1, rounds=1), BF16)
    _feed(recorder, {"32-true": 0.01, "bf16-mixed": 0.012})
    names = ["bf16-mixed", "32-true"]
    measured = recorder.measurements()
    assert ProbeRecorder.decode(ProbeRecorder.encode(measured, names), names) == measured


def test_one_stall_does_not_reject_a_fast_candidate():
    recorder = ProbeRecorder(ProbePlan(warmup_steps=1, steps=4, rounds=1), BF16)
    times = iter([0.01] * 5 + [0.02, 0.005, 0.08, 0.005, 0.005, 0.005])  # one 16x stall in bf16
    while recorder.current() is not None:
        recorder.record(next(times), True)
    assert recorder.rejected == {}
    assert choose_measured(["bf16-mixed", "32-true"], recorder.measurements())[0] == "bf16-mixed"


def test_a_candidate_with_only_skipped_timed_steps_is_still_measured():
    recorder = ProbeRecorder(ProbePlan(warmup_steps=1, steps=2, rounds=1), FP16)
    for seconds, skipped in [(0.01, False), (0.01, False), (0.01, False), (0.004, True), (0.004, True),
                             (0.005, True)]:
        recorder.record(seconds, True, skipped=skipped)
    m = recorder.measurements()
    assert m["16-mixed"].steps == 2 and m["16-mixed"].median_ms == pytest.approx(4.5)


def test_early_rejection_is_off_when_every_rank_must_run_the_same_schedule():
    recorder = ProbeRecorder(ProbePlan(warmup_steps=2, steps=6, rounds=2), BF16, reject_early=False)
    ran = _feed(recorder, {"32-true": 0.0088, "bf16-mixed": 0.164})
    assert len(ran) == recorder.total_steps == 17 and recorder.rejected == {}
    assert choose_measured(list(BF16), recorder.measurements())[0] == "32-true"


def test_step_clock_times_a_whole_step_or_from_the_previous_exit():
    clock = StepClock()
    assert clock.lap("cpu", whole_step=False) is None  # the first accumulation window has no previous exit
    clock.enter("cpu")
    seconds = clock.lap("cpu", whole_step=True)
    assert seconds is not None and seconds >= 0.0
    clock.mark_exit()
    assert clock.lap("cpu", whole_step=False) >= 0.0
    assert clock.lap("cpu", whole_step=True) is not None  # no enter(): falls back to the last exit


def test_warm_up_steps_never_reject_and_one_slow_timed_step_does_not_either():
    # a fast candidate whose warm-up steps are very slow (compilation, autotuning) and with one
    # stall among its timed steps is kept and measured at its median
    recorder = ProbeRecorder(ProbePlan(warmup_steps=2, steps=6, rounds=2), BF16)
    times = iter([0.010] * 5 + [0.500, 0.400] + [0.004, 0.200, 0.004, 0.004, 0.004, 0.004] + [0.010] * 4)
    while not recorder.done:
        recorder.record(next(times), True)
    assert recorder.rejected == {}
    measured = recorder.measurements()
    assert measured["bf16-mixed"].median_ms == pytest.approx(4.0)
    assert recorder.cost_seconds("bf16-mixed") == pytest.approx(recorder.spent - recorder.timed_steps * 0.004)
