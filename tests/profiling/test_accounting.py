"""Exclusive phase accounting with a fake clock: exact nanoseconds, steps and excluded steps."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lightning_optkit.profiling.accounting import PhaseAccountant
from lightning_optkit.profiling.phases import CATEGORIES, ActionClassifier
from lightning_optkit.profiling.series import BoundedSeries, LogHistogram, Timeline

FETCH = "[_TrainingEpochLoop].train_dataloader_next"
FORWARD = "[Strategy]SingleDeviceStrategy.training_step"
BACKWARD = "[Strategy]SingleDeviceStrategy.backward"
HOOK = "[Callback]Slow.on_train_batch_end"


class Clock:
    """A clock advanced by hand, in nanoseconds."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now

    def tick(self, ns: int) -> None:
        self.now += ns


def _step(acct: PhaseAccountant, clock: Clock, fwd: int = 300, bwd: int = 500, hook: int = 0, log: int = 0) -> None:
    acct.start(FETCH)
    clock.tick(100)
    acct.stop(FETCH)
    clock.tick(10)  # loop code between actions: "other"
    acct.start("run_training_batch")
    acct.start("[LightningModule]M.optimizer_step")
    acct.start(FORWARD)
    clock.tick(fwd)
    if log:
        acct.start_logging()
        clock.tick(log)
        acct.stop_logging()
    acct.stop(FORWARD)
    acct.start(BACKWARD)
    clock.tick(bwd)
    acct.stop(BACKWARD)
    clock.tick(40)  # the optimizer hook's own time is plumbing: "other"
    acct.stop("[LightningModule]M.optimizer_step")
    acct.stop("run_training_batch")
    if hook:
        acct.start(HOOK)
        clock.tick(hook)
        acct.stop(HOOK)


def ns(acct: PhaseAccountant, phase: str) -> int:
    return acct.run_ns[acct.phases.index(phase)] if phase in acct.phases else 0


def test_exclusive_times_add_up_exactly() -> None:
    clock = Clock()
    acct = PhaseAccountant(ActionClassifier(), clock=clock)
    for _ in range(3):
        _step(acct, clock, hook=200, log=50)
    acct.finish()
    assert acct.steps == 3
    assert ns(acct, "data_fetch") == 300
    assert ns(acct, "forward") == 900
    assert ns(acct, "logging") == 150
    assert ns(acct, "backward") == 1500
    assert ns(acct, "callback:Slow.on_train_batch_end") == 600
    assert ns(acct, "other") == 150
    assert sum(acct.run_ns) == 3 * 1200
    assert acct.log_calls == 3
    assert acct.step_times.count == 3 and abs(acct.step_times.maximum - 1200e-9) < 1e-15


def test_excluded_steps_are_not_blamed_on_the_run() -> None:
    clock = Clock()
    kinds = iter(["warmup", "optimizer_race", None, None])
    acct = PhaseAccountant(ActionClassifier(), step_kind=lambda: next(kinds), clock=clock)
    for hook in (0, 5000, 0, 0):
        _step(acct, clock, hook=hook)
    acct.finish()
    assert acct.steps == 2
    assert acct.excluded_steps == {"warmup": 1, "optimizer_race": 1}
    assert "callback:Slow.on_train_batch_end" not in acct.phase_seconds()
    assert sum(acct.excluded_ns["optimizer_race"]) == 5950
    categories = acct.category_seconds()
    assert abs(categories[CATEGORIES.index("excluded")] - 6900e-9) < 1e-15


def test_validation_region_and_checkpoint_inside_it() -> None:
    clock = Clock()
    acct = PhaseAccountant(ActionClassifier(checkpoint_keys=frozenset({"ModelCheckpoint{'x': 1}"})), clock=clock)
    _step(acct, clock)
    acct.start("[LightningModule]M.on_validation_model_eval")
    clock.tick(10)
    acct.stop("[LightningModule]M.on_validation_model_eval")
    clock.tick(1000)  # evaluation loop code between hooks belongs to validation
    acct.start_logging()
    clock.tick(7)
    acct.stop_logging()
    acct.start("[Callback]ModelCheckpoint{'x': 1}.on_validation_end")
    clock.tick(300)
    acct.stop("[Callback]ModelCheckpoint{'x': 1}.on_validation_end")
    _step(acct, clock)
    acct.finish()
    assert ns(acct, "validation") == 1017
    assert ns(acct, "checkpoint") == 300
    assert ns(acct, "logging") == 0
    assert acct.validation_runs == 1


def test_unknown_stops_and_unbalanced_events_are_ignored() -> None:
    clock = Clock()
    acct = PhaseAccountant(ActionClassifier(), clock=clock)
    acct.stop("[Callback]X.setup")  # its start happened before the accountant existed
    acct.leave()
    _step(acct, clock)
    acct.finish()
    assert acct.steps == 1


def test_new_phases_grow_every_accumulator() -> None:
    clock = Clock()
    kinds = iter(["warmup", None, None])
    acct = PhaseAccountant(ActionClassifier(), step_kind=lambda: next(kinds), clock=clock)
    _step(acct, clock)
    _step(acct, clock, hook=10)  # the callback phase appears after an excluded accumulator exists
    acct.finish()
    assert len(acct.excluded_ns["warmup"]) == len(acct.phases) == len(acct.run_ns)


def test_timeline_is_bounded_and_keeps_totals() -> None:
    clock = Clock()
    acct = PhaseAccountant(ActionClassifier(), clock=clock, timeline_points=8)
    for _ in range(100):
        _step(acct, clock)
    acct.finish()
    rows = acct.timeline_per_step()
    assert len(rows) <= 8
    assert acct.timeline.steps_per_point == 16
    steps = [b[0] - a[0] for a, b in zip([[0]] + acct.timeline.marks, acct.timeline.marks)]
    assert steps == [16, 16, 16, 16, 16, 16, 4]  # evenly spaced; the last point is the end of the run
    total = sum(sum(row) * n for row, n in zip(rows, steps))
    assert abs(total - 100 * 950e-9) < 1e-12
    forward = CATEGORIES.index("forward")
    assert [row[forward] for row in rows] == pytest.approx([300e-9] * len(rows))


def test_timeline_puts_excluded_steps_and_late_phases_in_their_points() -> None:
    clock = Clock()
    kinds = iter(["warmup", "warmup"] + [None] * 10)
    acct = PhaseAccountant(ActionClassifier(), step_kind=lambda: next(kinds), clock=clock, timeline_points=4)
    for i in range(6):
        _step(acct, clock, hook=10 if i == 5 else 0)  # the callback phase first appears in the last step
    acct.finish()
    rows = acct.timeline_per_step()
    excluded = CATEGORIES.index("excluded")
    assert acct.timeline.steps_per_point == 2 and len(rows) == 3
    # the first point is the two warm-up steps, nothing else
    assert rows[0][excluded] == pytest.approx(950e-9) and sum(rows[0]) == pytest.approx(950e-9)
    assert rows[1][excluded] == 0.0 and rows[2][CATEGORIES.index("callbacks")] == pytest.approx(10e-9 / 2)


def test_histogram_quantiles() -> None:
    hist = LogHistogram()
    for ms in range(1, 101):
        hist.add(ms / 1e3)
    assert abs(hist.quantile(0.5) - 0.0505) / 0.0505 < 0.04
    assert abs(hist.quantile(0.9) - 0.0901) / 0.0901 < 0.04
    assert hist.maximum == 0.1 and hist.count == 100
    assert LogHistogram().quantile(0.5) == 0.0


def test_timeline_halving_and_series_bounds() -> None:
    def run(timeline: Timeline, steps: int) -> None:
        last = 0
        for i in range(1, steps + 1):  # counter 0 grows by 1 per step, counter 1 by 2i - 1
            if i - last >= timeline.steps_per_point:
                timeline.mark([i, i, i * i])
                last = i
                assert len(timeline.marks) <= timeline.capacity
        timeline.mark([steps, steps, steps * steps])  # the end of the run

    timeline = Timeline(capacity=4)
    run(timeline, 10)
    assert timeline.steps_per_point == 4 and [m[0] for m in timeline.marks] == [4, 8, 10]
    rows = timeline.per_step([0, 1], 2)
    assert [r[0] for r in rows] == [1.0, 1.0, 1.0]
    assert [r[1] * n for r, n in zip(rows, [4, 4, 2])] == [16.0, 48.0, 36.0]
    odd = Timeline(capacity=3)
    run(odd, 40)
    assert len(odd.marks) <= 3 and odd.marks[-1][0] == 40
    series = BoundedSeries(capacity=8)
    for i in range(1000):
        series.add(float(i), float(i))
    assert len(series.xs) < 8
    assert series.samples()[-1] == (999.0, 999.0)


def test_device_timer_is_marked_where_the_compute_slot_changes() -> None:
    class Marks:
        def __init__(self) -> None:
            self.marks: list[int] = []

        def mark(self, slot: int) -> None:
            self.marks.append(slot)

    clock = Clock()
    kinds = iter(["warmup", None, None])
    acct = PhaseAccountant(ActionClassifier(), step_kind=lambda: next(kinds), clock=clock)
    acct.device_timer = timer = Marks()
    optimizer = acct.phase_index("optimizer_step")

    def step() -> None:
        acct.start(FETCH)
        acct.stop(FETCH)
        acct.start("run_training_batch")
        acct.enter(optimizer)  # optimizer.step runs the closure: forward and backward nest inside
        acct.start(FORWARD)
        acct.start_logging()
        acct.stop_logging()
        acct.stop(FORWARD)
        acct.start(BACKWARD)
        acct.stop(BACKWARD)
        acct.leave()
        acct.stop("run_training_batch")

    step()  # warm-up: not timed
    assert timer.marks == []
    step()
    assert timer.marks == [3, 0, -1, 0, 3, 1, 3, -1]


def test_contexts_account_exactly_like_start_and_stop() -> None:
    def run(use_contexts: bool) -> list[int]:
        clock = Clock()
        acct = PhaseAccountant(ActionClassifier(), clock=clock)

        def action(name: str, ns: int, inner: Callable[[], None] | None = None) -> None:
            context = acct.context(name) if use_contexts else None
            if context is None:
                acct.start(name)
            else:
                context.__enter__()
            clock.tick(ns)
            if inner is not None:
                inner()
            if context is None:
                acct.stop(name)
            else:
                context.__exit__(None, None, None)

        for _ in range(3):
            action(FETCH, 100)
            clock.tick(10)
            acct.start("run_training_batch")
            action(FORWARD, 300, lambda: action(HOOK, 20))
            action(BACKWARD, 500)
            acct.stop("run_training_batch")
            action("[LightningModule]M.on_validation_model_eval", 50)
            clock.tick(70)
        acct.finish()
        assert acct.context("run_training_batch") is None
        return list(acct.run_ns)

    assert run(True) == run(False)


def test_inlined_log_and_optimizer_wrappers_account_like_the_methods() -> None:
    def run(inlined: bool, timer: bool) -> tuple[list[int], int, list[int]]:
        clock = Clock()
        kinds = iter(["warmup", None, None, None])
        acct = PhaseAccountant(ActionClassifier(), step_kind=lambda: next(kinds), clock=clock)
        marks: list[int] = []
        if timer:
            acct.device_timer = type("Marks", (), {"mark": lambda self, slot: marks.append(slot)})()
        optimizer = acct.phase_index("optimizer_step")
        pre, post = acct.optimizer_hooks()
        log = acct.timed_log(lambda ns: clock.tick(ns))

        def logged(ns: int) -> None:
            if inlined:
                log(ns)
            else:
                acct.start_logging()
                clock.tick(ns)
                acct.stop_logging()

        for _ in range(3):
            acct.start(FETCH)
            clock.tick(100)
            acct.stop(FETCH)
            acct.start("run_training_batch")
            pre(None, (), {}) if inlined else acct.enter(optimizer)
            clock.tick(30)
            acct.start(FORWARD)
            clock.tick(300)
            logged(25)
            acct.stop(FORWARD)
            clock.tick(40)
            post(None, (), {}) if inlined else acct.leave()
            acct.stop("run_training_batch")
        acct.start("[LightningModule]M.on_validation_model_eval")  # a log call in validation is validation
        acct.stop("[LightningModule]M.on_validation_model_eval")
        logged(9)
        acct.finish()
        return list(acct.run_ns), acct.log_calls, marks

    for timer in (False, True):
        assert run(True, timer) == run(False, timer)
    run_ns, log_calls, _ = run(True, False)
    acct = PhaseAccountant(ActionClassifier())
    assert run_ns[acct.phases.index("logging")] == 50 and log_calls == 2  # the warm-up step's call is not counted
    assert run_ns[acct.phases.index("validation")] == 9


def test_wrapped_call_that_raises_still_leaves_its_phase() -> None:
    clock = Clock()
    acct = PhaseAccountant(ActionClassifier(), clock=clock)

    def failing() -> None:
        clock.tick(5)
        raise ValueError("bad metric")

    log = acct.timed_log(failing)
    acct.start(FETCH)  # a step starts
    acct.stop(FETCH)
    acct.start(FORWARD)
    try:
        log()
    except ValueError:
        pass
    clock.tick(7)
    acct.stop(FORWARD)
    assert ns(acct, "logging") == 5 and ns(acct, "forward") == 7


def test_recompilations_are_counted_in_ordinary_steps_only() -> None:
    clock = Clock()
    kinds = iter(["warmup", None, None, None, None])
    acct = PhaseAccountant(ActionClassifier(), step_kind=lambda: next(kinds), clock=clock)
    stats = {"unique_graphs": 1}
    acct.watch_graphs(stats)
    for graphs, fwd in ((2, 300), (2, 300), (3, 5000), (3, 300)):  # the warm-up step compiles: not counted
        _step(acct, clock, fwd=fwd)
        stats["unique_graphs"] = graphs  # what the step compiled
    acct.finish()
    assert acct.recompiles == 1
    assert abs(acct.recompile_seconds - 5650e-9) < 1e-15  # that step's time


def test_step_end_notice_after_a_countdown() -> None:
    clock = Clock()
    acct = PhaseAccountant(ActionClassifier(), clock=clock)
    seen: list[int] = []
    acct.on_step_end = lambda: seen.append(acct.steps)
    acct.notify_in = 3
    for _ in range(6):
        _step(acct, clock)
    acct.finish()
    assert seen == [3] and acct.notify_in == 0
