"""Exclusive phase accounting of training steps, in constant memory and a few operations per event.

The accountant receives ``start(name)`` / ``stop(name)`` events of nested actions (Lightning's
profiler calls). The time between two consecutive events belongs to the innermost open action,
so every nanosecond of a step is counted exactly once (exclusive time). A step runs from the start
of one training batch fetch to the start of the next. Steps spent on something other than the
run itself (warm-up, a search, a deep profiling window) are accounted separately as *excluded*.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lightning_optkit.profiling.phases import (
    BATCH_MARK,
    TRANSPARENT,
    CATEGORIES,
    CORE_PHASES,
    EXCLUDED_CATEGORY,
    ActionClassifier,
    category_of,
)
from lightning_optkit.profiling.hot_path import ActionContext, BatchMarkContext, step_hooks, timed_log
from lightning_optkit.profiling.series import LogHistogram, Timeline

__all__ = ["PhaseAccountant", "ActionContext", "BatchMarkContext"]

_OTHER = CORE_PHASES.index("other")
_FETCH = CORE_PHASES.index("data_fetch")
_LOGGING = CORE_PHASES.index("logging")
_VALIDATION = CORE_PHASES.index("validation")
_GC = CORE_PHASES.index("gc")
#: step times buffered before they are binned into the histogram
_PENDING_MAX = 64
#: phase -> slot of the device timer (``timers.SLOTS``): the compute the device does
_DEVICE_SLOTS = {"forward": 0, "backward": 1, "optimizer_step": 3}


class PhaseAccountant:
    """Splits wall time into exclusive phases per step.

    Args:
        classifier: Maps action names to phases.
        step_kind: Called once per step start; returns ``None`` for an ordinary step or the name of
            what the step is spent on (``"warmup"``, ``"optimizer_race"``, ...).
        clock: Timer backend returning integer nanoseconds (``time.perf_counter_ns``).
        timeline_points: Maximum number of points of the timeline.
    """

    # fixed slots: the hot path reads a dozen of these per event, between bursts of model code that
    # evict the caches; slots are read at fixed offsets instead of through a (large) instance dict
    __slots__ = (
        "_acc", "_batch_ran", "_cache", "_category", "_cur", "_excluded_total", "_gap", "_graphs", "_in_val",
        "_index", "_last", "_marked_steps", "_pending", "_pre_ns", "_slot", "_stack", "_step_kind", "_step_start",
        "_step_times", "_steps_since_point", "classifier", "clock", "device_timer", "excluded_ns", "excluded_steps",
        "graph_stats", "log_calls", "notify_in", "on_step_end", "phases", "recompile_seconds", "recompiles",
        "run_ns", "started", "step_kind", "steps", "timeline", "validation_runs",
    )

    def __init__(
        self,
        classifier: ActionClassifier | None = None,
        step_kind: Callable[[], str | None] | None = None,
        clock: Callable[[], int] = time.perf_counter_ns,
        timeline_points: int = 96,
    ) -> None:
        self.classifier = classifier or ActionClassifier()
        self.step_kind = step_kind or (lambda: None)
        self.clock = clock
        self.phases: list[str] = list(CORE_PHASES)
        self._category: list[int] = [category_of(p) for p in self.phases]
        self._index: dict[str, int] = {p: i for i, p in enumerate(self.phases)}
        self._cache: dict[str, tuple[int, bool]] = {}
        self.run_ns: list[int] = [0] * len(self.phases)
        self.excluded_ns: dict[str, list[int]] = {}
        self.excluded_steps: dict[str, int] = {}
        self._pre_ns: list[int] = [0] * len(self.phases)
        self._acc = self._pre_ns
        self._stack: list[int] = []
        self._cur = _OTHER
        self._gap = _OTHER
        self._in_val = False
        self._last = clock()
        self._batch_ran = False
        self.started = False
        self._step_start = 0
        self._step_kind: str | None = None
        self.steps = 0
        self._step_times = LogHistogram()
        self._pending: list[float] = []  # step times not yet binned (binned in batches, off the per-step path)
        self.log_calls = 0
        self.validation_runs = 0
        #: running totals ``[steps, excluded ns, *run_ns]`` marked every ``timeline.steps_per_point`` steps
        self.timeline = Timeline(capacity=timeline_points)
        self._excluded_total = 0  # ns of the excluded steps so far
        self._marked_steps = 0
        self._steps_since_point = 0
        #: Called at the end of the ``notify_in``-th step from now (then ``notify_in`` is 0 until set again).
        self.on_step_end: Callable[[], None] | None = None
        self.notify_in = 0
        #: A mapping whose ``"unique_graphs"`` counts compiled graphs (dynamo's ``counters["stats"]``), or None:
        #: an ordinary step in which it grows is a recompilation (counted, with the step's time)
        self.graph_stats: Any = None
        self._graphs = 0
        self.recompiles = 0
        self.recompile_seconds = 0.0
        #: Device-side timer of the compute phases (``timers.HostTimer`` / ``CudaEventTimer``), or None.
        self.device_timer: Any = None
        self._slot: list[int] = [_DEVICE_SLOTS.get(p, -1) for p in self.phases]

    # ----------------------------------------------------------------- hot path
    def start(self, name: str) -> None:
        """An action named ``name`` starts."""
        entry = self._cache.get(name)
        if entry is None:
            entry = self._learn(name)
        phase, validation = entry
        now = self.clock()
        if phase < 0:
            if phase == BATCH_MARK:
                if self._batch_ran and not self._stack:
                    self._acc[self._cur] += now - self._last
                    self._last = now
                    self._boundary(now)
                self._batch_ran = True
            return
        self._acc[self._cur] += now - self._last
        self._last = now
        stack = self._stack
        if stack:
            stack.append(self._cur)
        elif phase != _FETCH and validation == self._in_val:
            stack.append(self._gap)  # ``_top_level`` when it neither starts a step nor changes the region
        else:
            self._top_level(phase, validation, now)
        if self.device_timer is not None and self._slot[phase] != self._slot[self._cur]:
            self._device_switch(self._cur, phase)
        self._cur = phase

    def _top_level(self, phase: int, validation: bool, now: int) -> None:
        """An action starts with no other open: step boundary, validation region, gap phase."""
        if phase == _FETCH and (self._batch_ran or not self.started):
            self._boundary(now)
            self._batch_ran = False
        if validation and not self._in_val:
            self.validation_runs += 1
        self._in_val = validation
        self._gap = _VALIDATION if validation else _OTHER
        self._stack.append(self._gap)

    def context(self, name: str) -> ActionContext | None:
        """A reusable ``with`` context equal to ``start(name)``/``stop(name)`` (``None`` for marker actions)."""
        entry = self._cache.get(name)
        if entry is None:
            entry = self._learn(name)
        return ActionContext(self, entry[0], entry[1]) if entry[0] >= 0 else None

    def batch_mark(self) -> None:
        """``run_training_batch`` starts (the same as ``start("run_training_batch")``, without the lookup)."""
        if self._batch_ran and not self._stack:
            now = self.clock()
            self._acc[self._cur] += now - self._last
            self._last = now
            self._boundary(now)
        self._batch_ran = True

    def stop(self, name: str) -> None:
        """The action named ``name`` stops."""
        entry = self._cache.get(name)
        if entry is None or entry[0] < 0 or not self._stack:
            return
        # the body of ``leave``, inlined: Lightning calls this once per step (the data fetch)
        now = self.clock()
        self._acc[self._cur] += now - self._last
        self._last = now
        previous, self._cur = self._cur, self._stack.pop()
        if self.device_timer is not None and self._slot[previous] != self._slot[self._cur]:
            self._device_switch(previous, self._cur)

    def _device_switch(self, old: int, new: int) -> None:
        """Mark the device timeline where the compute slot changes (ordinary steps only)."""
        if self._acc is self.run_ns:
            self.device_timer.mark(self._slot[new])

    def start_logging(self) -> None:
        """A ``LightningModule.log`` call starts (counted as validation inside a validation run)."""
        if self._in_val:
            self.enter(_VALIDATION)
            return
        if self._acc is self.run_ns:
            self.log_calls += 1
        self.enter(_LOGGING)

    def timed_log(self, log: Callable[..., Any]) -> Callable[..., Any]:
        """``log`` (a ``LightningModule.log``) wrapped so that its calls are the ``logging`` phase and counted."""
        return timed_log(self, log)

    def optimizer_hooks(self) -> tuple[Callable[..., None], Callable[..., None]]:
        """Optimizer step pre- and post-hooks that make the optimizer's own step the ``optimizer_step`` phase."""
        return step_hooks(self, self.phase_index("optimizer_step"))

    def enter_outside_validation(self, phase: int) -> None:
        """Like :meth:`enter`, but inside a validation run the code counts as validation."""
        self.enter(_VALIDATION if self._in_val else phase)

    def stop_logging(self) -> None:
        """The ``LightningModule.log`` call returns (the same as :meth:`leave`)."""
        self.leave()

    def gc_event(self, event: str, info: dict) -> None:
        """A ``gc.callbacks`` hook: full (generation 2) collections are the ``gc`` phase, not the code they interrupt."""
        if info["generation"] != 2:
            return
        if event == "start":
            self.enter(_GC)
        else:
            self.leave()

    def enter(self, phase: int) -> None:
        """Code of phase index ``phase`` starts (for code Lightning does not name, such as ``optimizer.step``)."""
        now = self.clock()
        self._acc[self._cur] += now - self._last
        self._last = now
        self._stack.append(self._cur)
        if self.device_timer is not None and self._slot[phase] != self._slot[self._cur]:
            self._device_switch(self._cur, phase)
        self._cur = phase

    def leave(self) -> None:
        """The code entered last returns."""
        if not self._stack:
            return
        now = self.clock()
        self._acc[self._cur] += now - self._last
        self._last = now
        previous, self._cur = self._cur, self._stack.pop()
        if self.device_timer is not None and self._slot[previous] != self._slot[self._cur]:
            self._device_switch(previous, self._cur)

    def is_batch_mark(self, name: str) -> bool:
        """Whether ``name`` is the action that marks a training batch (``run_training_batch``)."""
        entry = self._cache.get(name)
        if entry is None:
            entry = self._learn(name)
        return entry[0] == BATCH_MARK

    def is_transparent(self, name: str) -> bool:
        """Whether ``name``'s events change nothing (its time stays with the enclosing phase)."""
        entry = self._cache.get(name)
        if entry is None:
            entry = self._learn(name)
        return entry[0] == TRANSPARENT

    # ----------------------------------------------------------------- step bookkeeping
    def _learn(self, name: str) -> tuple[int, bool]:
        found = self.classifier.classify(name)
        if found.code < 0:
            entry = (found.code, found.validation)
        else:
            entry = (self.phase_index(found.phase), found.validation)
        self._cache[name] = entry
        return entry

    def phase_index(self, phase: str) -> int:
        """The index of ``phase``, registering it on first use."""
        index = self._index.get(phase)
        if index is None:
            index = len(self.phases)
            self.phases.append(phase)
            self._category.append(category_of(phase))
            self._slot.append(_DEVICE_SLOTS.get(phase, -1))
            self._index[phase] = index
            for acc in (self.run_ns, self._pre_ns, *self.excluded_ns.values()):
                acc.append(0)
        return index

    def _boundary(self, now: int, opens: bool = True) -> None:
        """A step ends (if one ran) and, if ``opens``, the next starts at ``now``: one call per step, inlined."""
        if self.started:
            seconds = (now - self._step_start) * 1e-9
            kind = self._step_kind
            if kind is None:
                self.steps += 1
                pending = self._pending
                pending.append(seconds)
                if len(pending) >= _PENDING_MAX:
                    self._step_times.add_many(pending)
                    pending.clear()
            else:
                self.excluded_steps[kind] = self.excluded_steps.get(kind, 0) + 1
                self._excluded_total += now - self._step_start
            stats = self.graph_stats
            if stats is not None:
                graphs = stats.get("unique_graphs", 0)  # a plain lookup (no Counter.__missing__)
                if graphs != self._graphs:
                    self._graphs = graphs
                    if kind is None:
                        self.recompiles += 1
                        self.recompile_seconds += seconds
            self._steps_since_point += 1
            if self._steps_since_point >= self.timeline.steps_per_point:
                self._close_point()
            if self.notify_in:
                self.notify_in -= 1
                if not self.notify_in and self.on_step_end is not None:
                    self.on_step_end()
        if not opens:
            return
        self.started = True
        self._step_start = now
        kind = self.step_kind()
        self._step_kind = kind
        if kind is None:
            self._acc = self.run_ns
        else:
            acc = self.excluded_ns.get(kind)
            if acc is None:
                acc = self.excluded_ns[kind] = [0] * len(self.phases)
            self._acc = acc

    def watch_graphs(self, stats: Any) -> None:
        """Count recompilations from ``stats["unique_graphs"]`` (``None``: stop counting)."""
        self.graph_stats = stats
        if stats is not None:
            self._graphs = stats.get("unique_graphs", 0)

    def _close_point(self) -> None:
        # a copy of the running totals; the per-point differences are taken when the timeline is read
        self._marked_steps += self._steps_since_point
        self._steps_since_point = 0
        self.timeline.mark([self._marked_steps, self._excluded_total, *self.run_ns])

    def timeline_per_step(self) -> list[list[float]]:
        """Seconds per step by chart category for each point of the timeline (the last may cover fewer steps)."""
        return self.timeline.per_step([EXCLUDED_CATEGORY, *self._category], len(CATEGORIES), scale=1e-9)

    def finish(self) -> None:
        """Close the step in progress (call once at the end of the run; events after it still count)."""
        now = self.clock()
        self._acc[self._cur] += now - self._last
        self._last = now
        if self.started and self._batch_ran:
            self._boundary(now, opens=False)
            self._batch_ran = False
        if self._steps_since_point:
            self._close_point()
        self._acc = self._pre_ns

    @property
    def step_times(self) -> LogHistogram:
        """Histogram of the ordinary steps' times (seconds)."""
        if self._pending:
            self._step_times.add_many(self._pending)
            self._pending.clear()
        return self._step_times

    @property
    def current_kind(self) -> str | None:
        """What the step in progress is spent on (``None``: an ordinary, measured step)."""
        return self._step_kind if self.started else "not_started"

    # ----------------------------------------------------------------- results
    def phase_seconds(self) -> dict[str, float]:
        """Seconds per phase over the ordinary (not excluded) steps."""
        return {p: ns * 1e-9 for p, ns in zip(self.phases, self.run_ns) if ns}

    def excluded_seconds(self) -> dict[str, float]:
        """Seconds per excluded kind (warm-up, searches, deep windows)."""
        return {kind: sum(acc) * 1e-9 for kind, acc in self.excluded_ns.items()}

    def category_seconds(self) -> list[float]:
        """Seconds per chart category over the ordinary steps."""
        seconds = [0.0] * len(CATEGORIES)
        for i, ns in enumerate(self.run_ns):
            seconds[self._category[i]] += ns * 1e-9
        seconds[EXCLUDED_CATEGORY] = sum(self.excluded_seconds().values())
        return seconds
