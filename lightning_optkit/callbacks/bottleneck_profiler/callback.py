"""``BottleneckProfiler``: measures where each training step's time goes and names the fix.

The callback wraps the Trainer's profiler (forwarding every call to it) to time the actions
Lightning already names, measures ``LightningModule.log`` separately, samples memory and
compiled graphs every few steps and, at the end of ``fit`` (or when it fails), diagnoses the run
with the pure rules of :mod:`lightning_optkit.profiling` and writes a small report.
"""

from __future__ import annotations

import functools
import gc
import math
import os
from collections.abc import Sequence
from typing import Any, Literal

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.callbacks.checkpoint import Checkpoint
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from typing_extensions import override

from lightning_optkit import _files, _trainer
from lightning_optkit.callbacks.bottleneck_profiler._hooks import HookShadows, quiet_actions
from lightning_optkit.callbacks.bottleneck_profiler._phase_profiler import PhaseProfiler
from lightning_optkit.callbacks.bottleneck_profiler._probes import DeepWindow, FlopProbe
from lightning_optkit.callbacks.bottleneck_profiler._report import assemble_report
from lightning_optkit.callbacks.bottleneck_profiler._samples import RunSamples
from lightning_optkit.callbacks.bottleneck_profiler._timed_calls import (
    TimedLog,
    TimedLoggers,
    TimedModuleHooks,
    TimedOptimizers,
)
from lightning_optkit.profiling import render
from lightning_optkit.profiling.accounting import PhaseAccountant
from lightning_optkit.profiling.collect import rank_summary
from lightning_optkit.profiling.options import check_options
from lightning_optkit.profiling.phases import ActionClassifier
from lightning_optkit.profiling.report import pack_rank, skipped_hooks_notes, unpack_rank
from lightning_optkit.profiling.sampling import compiled_graphs, dynamo_counters
from lightning_optkit.profiling.summaries import share_metrics
from lightning_optkit.profiling.timers import make_timer

__all__ = ["BottleneckProfiler"]

Format = Literal["json", "md", "html"]


class BottleneckProfiler(Callback):
    """Names what holds training back, with the measured share of time it costs and the fix.

    Args:
        dirpath: Directory of the report files; default: the trainer's ``log_dir``
            (``default_root_dir`` without a logger).
        filename: Base name of the report files (``<filename>.json``, ``.md``, ``.html``).
        formats: Report files to write, any of ``json``, ``md``, ``html``.
        sample_every_n_steps: Steps between cheap samples (memory, compiled graphs, batch size).
        sync_every_n_steps: Steps between gathers of the per-rank summaries under DDP.
        warmup_steps: First steps not measured (one-time costs such as lazy initialisation).
        deep_window_steps: Steps of a ``torch.profiler`` window summarised into the report; 0 = off.
        deep_window_start: Step at which the deep window starts.
        trace: Also export the deep window as a Chrome trace file next to the report.
        trace_max_mb: Largest trace file kept, in MB (a larger one is deleted with a warning).
        measure_flops: Count the model's FLOPs once on one batch (``torch.utils.flop_counter``).
        log_shares: Log each category's share as ``bottleneck/<category>`` to the trainer's loggers.
        console: Print a one-screen ranked summary at the end.
        timeline_points: Points of the step-time chart (the timeline is downsampled to fit).
        device_timing: Device-side timing of forward/backward/optimizer: ``auto`` (CUDA events read
            lazily on a GPU; elsewhere the host phase times are the device times), ``events``,
            ``host`` (the host clock through the same timer code) or ``off``.
        skip_empty_hooks: Opt-in faster hook dispatch, off by default so the run is measured as it is.
            ``true``: during the fit, let Lightning skip the per-batch hooks that nobody overrode (empty
            defaults of the LightningModule, the strategy and the callbacks), a few microseconds
            apiece per step; nothing the user wrote stops running, but the profiled run is then faster
            than the same run without the profiler, and the report says so. Restored after the fit.
    """

    def __init__(
        self,
        dirpath: str | None = None,
        filename: str = "bottlenecks",
        formats: Sequence[Format] = ("json", "md", "html"),
        sample_every_n_steps: int = 25,
        sync_every_n_steps: int = 200,
        warmup_steps: int = 1,
        deep_window_steps: int = 0,
        deep_window_start: int = 10,
        trace: bool = False,
        trace_max_mb: float = 50.0,
        measure_flops: bool = True,
        log_shares: bool = False,
        console: bool = True,
        timeline_points: int = 96,
        device_timing: Literal["auto", "events", "host", "off"] = "auto",
        skip_empty_hooks: bool = False,
    ) -> None:
        super().__init__()
        check_options(filename=filename, formats=formats, sample_every_n_steps=sample_every_n_steps,
                      sync_every_n_steps=sync_every_n_steps, timeline_points=timeline_points,
                      warmup_steps=warmup_steps, deep_window_steps=deep_window_steps,
                      deep_window_start=deep_window_start, device_timing=device_timing, trace_max_mb=trace_max_mb,
                      skip_empty_hooks=skip_empty_hooks)
        self.dirpath = dirpath
        self.filename = filename
        self.formats = tuple(formats)
        self.sample_every_n_steps = sample_every_n_steps
        self.sync_every_n_steps = sync_every_n_steps
        self.warmup_steps = warmup_steps
        self.deep_window_steps = deep_window_steps
        self.deep_window_start = deep_window_start
        self.trace = trace
        self.trace_max_mb = trace_max_mb
        self.measure_flops = measure_flops
        self.log_shares = log_shares
        self.console = console
        self.timeline_points = timeline_points
        self.device_timing = device_timing
        self.skip_empty_hooks = skip_empty_hooks
        self.report: dict[str, Any] | None = None
        self._active = False
        self._saves = 0
        # Lightning skips a hook that is not callable: hooks this callback does not use cost nothing
        for hook in _UNUSED_HOOKS:
            setattr(self, hook, None)

    # ------------------------------------------------------------------ set-up / tear-down
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._resolved_dir = self.dirpath or trainer.log_dir or trainer.default_root_dir
        problem = _files.check_writable(self._resolved_dir)
        if problem is not None:
            raise MisconfigurationException(
                f"BottleneckProfiler(dirpath={self._resolved_dir!r}) is not writable ({problem}); pass a "
                "writable dirpath (or fix the trainer's log_dir) so the report is not lost at the end"
            )
        self._trainer = trainer
        checkpoint_keys = frozenset(cb.state_key for cb in trainer.callbacks if isinstance(cb, Checkpoint))
        classifier = ActionClassifier(checkpoint_keys=checkpoint_keys, own_key=self.state_key,
                                      quiet=quiet_actions(trainer, pl_module, exclude=self))
        self._notes = _trainer.run_notes(trainer)
        self.accountant = PhaseAccountant(classifier, self._step_kind, timeline_points=self.timeline_points)
        self.accountant.on_step_end = self._on_step_end
        # batches ended: Lightning's own counter, from train start (after a restore); the per-batch hooks
        # are set to None (Lightning skips them) on batches without work
        self._progress: Any = None
        self._offset, self._next_sample, self._end_hook_off = 0, 1, False
        self.__dict__.pop("on_train_batch_start", None)
        self.__dict__.pop("on_train_batch_end", None)
        self._saves = 0
        self._samples = RunSamples()
        self._graphs_start = compiled_graphs()
        self._world = 1
        # steps before which on_train_batch_end has nothing to do (samples, gathers, probes)
        self._every = self.sample_every_n_steps
        window_end = self.deep_window_start + self.deep_window_steps if self.deep_window_steps else 0
        self._busy_until = max(self._flop_step() + 1, window_end, 1)
        self._next_check = 1
        self._ranks: list[Any] = []
        self._timer: Any = None
        self._optimizers = TimedOptimizers(self.accountant)
        self._shadows = HookShadows()
        self._skipped_hooks = 0
        self._window = DeepWindow(self.deep_window_start, self.deep_window_steps)
        self._flops = FlopProbe(self._flop_step()) if self.measure_flops else None
        self._inner = trainer.profiler
        if isinstance(self._inner, PhaseProfiler):  # a second fit on the same trainer
            self._inner = self._inner.inner
        trainer.profiler = PhaseProfiler(self.accountant, self._inner)
        self._log = TimedLog(self.accountant)
        self._log.install(pl_module)
        self._loggers = TimedLoggers(self.accountant)
        self._loggers.install(trainer.loggers)
        self._module_hooks = TimedModuleHooks(self.accountant)
        gc.callbacks.append(self.accountant.gc_event)
        self._active = True

    @override
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore(trainer)

    def _restore(self, trainer: pl.Trainer) -> None:
        if not self._active:
            return
        self._active = False
        if isinstance(trainer.profiler, PhaseProfiler):
            trainer.profiler = self._inner
        self._log.remove()
        self._loggers.remove()
        self._module_hooks.remove()
        if self.accountant.gc_event in gc.callbacks:
            gc.callbacks.remove(self.accountant.gc_event)
        self._window.close(None)
        if self._flops is not None:
            self._flops.close()
        self._optimizers.undo()
        self._shadows.restore()
        self.__dict__.pop("on_train_batch_start", None)
        self.__dict__.pop("on_train_batch_end", None)
        self._end_hook_off = False

    def _skips_hooks(self) -> bool:
        return self.skip_empty_hooks is True

    # ------------------------------------------------------------------ per step
    def _flop_step(self) -> int:
        step = self.warmup_steps
        if self.deep_window_steps and self.deep_window_start <= step < self.deep_window_start + self.deep_window_steps:
            step = self.deep_window_start + self.deep_window_steps
        return step

    def _ended(self) -> int:
        """Training batches ended so far in this fit."""
        progress = self._progress
        return 0 if progress is None else progress.completed - self._offset

    def _step_kind(self) -> str | None:
        search = self._notes.phase  # what ``_trainer.current_search_phase`` reads, without the call
        if search is not None:
            return search
        progress = self._progress
        index = 0 if progress is None else progress.completed - self._offset
        if index >= self._busy_until:  # past warm-up, FLOP count and deep window
            return None
        if index < self.warmup_steps:
            return "warmup"
        if self._window.covers(index):
            return "deep_window"
        if self._flops is not None and index == self._flops.step:
            return "flop_count"
        return None

    def _on_step_end(self) -> None:
        """The accountant's countdown ran out: switch the end hook of the batch that just started on if it has work."""
        if not self._end_hook_off:
            return
        wait = self._next_check - (self._ended() + 1)
        if wait > 0:
            self.accountant.notify_in = wait
        else:
            self._end_hook_off = False
            self.__dict__.pop("on_train_batch_end", None)

    def _watch_graphs(self) -> None:
        """Let the accountant count recompilations once dynamo is loaded (looked up again at each sample)."""
        counters = dynamo_counters()
        if counters is not None and counters["stats"] is not self.accountant.graph_stats:  # new, or reset
            self.accountant.watch_graphs(counters["stats"])

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active:
            return
        self._world = trainer.world_size
        self._watch_graphs()
        device = trainer.strategy.root_device
        self._samples.allocator_device = device if device.type == "cuda" else None
        self._progress = trainer.fit_loop.epoch_loop.batch_progress.total
        self._offset = self._progress.completed
        if self._world > 1:
            self._every = math.gcd(self.sample_every_n_steps, self.sync_every_n_steps)
        self._timer = self.accountant.device_timer = make_timer(device.type, self.device_timing)
        self._optimizers.watch(trainer.optimizers)
        total = trainer.estimated_stepping_batches * max(trainer.accumulate_grad_batches, 1)
        if self.deep_window_steps and total != float("inf") and self.deep_window_start + self.deep_window_steps > total:
            rank_zero_warn(
                f"BottleneckProfiler(deep_window_start={self.deep_window_start}, deep_window_steps="
                f"{self.deep_window_steps}) ends after the run's {int(total)} steps; the window will be cut short. "
                "Start it earlier or shorten it."
            )
        self._sample(trainer, batch=None, index=0)

    @override
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        if not self._active:
            return
        index = self._ended()
        if index == 0:
            self._log.install(pl_module)  # another callback may have swapped ``log`` at train start
            self._module_hooks.install(pl_module)  # hooks registered up to train start
            if self._skips_hooks():  # after every callback's train start, which may wrap hooks
                self._shadows.shadow(trainer, pl_module, exclude=self)
                self._skipped_hooks = len(self._shadows.shadowed)
        if index == self._window.start and self.deep_window_steps:
            self._window.open(trainer.strategy.root_device)
        if self._flops is not None and index == self._flops.step:
            self._flops.open(pl_module)
        if index + 1 >= self._busy_until:
            self.on_train_batch_start = None  # type: ignore[assignment]  # nothing left to open
            # from the next step on, only a search can make a step other than ordinary: read it in C
            self.accountant.step_kind = functools.partial(getattr, self._notes, "phase")

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self._active:
            return
        index = self._ended() + 1
        if index < self._next_check:
            return
        self._next_check = index + 1 if index <= self._busy_until else index - index % self._every + self._every
        if self._flops is not None and index >= self._flops.step + 1:
            self._flops.close()
        if self._window.active and index >= self._window.start + self._window.steps:
            self._window.close(self._trace_path() if self.trace else None, self.trace_max_mb)
        if index >= self._next_sample:
            n = self.sample_every_n_steps
            self._next_sample = index - index % n + n
            self._sample(trainer, batch, index)
        if self._world > 1:
            if index % self.sync_every_n_steps == 0:
                self._gather(trainer)
        elif index + 1 < self._next_check:
            # a single process has nothing to do until the next sample: Lightning skips the hook
            # until ``_on_step_end`` switches it back on (every rank keeps it under DDP, for the gathers)
            self._end_hook_off = True
            self.on_train_batch_end = None  # type: ignore[assignment]
            self.accountant.notify_in = self._next_check - index - 1

    @override
    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self._saves += 1

    def _sample(self, trainer: pl.Trainer, batch: Any, index: int) -> None:
        if self._timer is not None:
            self._timer.poll()
        self._watch_graphs()
        self._optimizers.watch(trainer.optimizers)
        self._samples.take(index, batch)
        if self.log_shares and trainer.loggers and self.accountant.steps:
            metrics = share_metrics(self.accountant.category_seconds())
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)

    def _gather(self, trainer: pl.Trainer) -> None:
        """Every rank's summary, packed into vectors of one length (no rank waits on a shape)."""
        own = rank_summary(self.accountant, trainer.global_rank, self._samples.peak)
        rows = _trainer.gather_rows(trainer.strategy, pack_rank(own, self.timeline_points))
        self._ranks = [unpack_rank(row, self.accountant.phases) for row in rows]

    # ------------------------------------------------------------------ the report
    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active:
            return
        self.accountant.finish()
        self._close_window()
        self._sample(trainer, batch=None, index=self._ended())
        if trainer.world_size > 1:
            self._gather(trainer)
        self._finalise(trainer, "finished")

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not self._active:
            return
        try:
            self.accountant.finish()
            self._close_window()
            self._finalise(trainer, f"interrupted: {type(exception).__name__}: {exception}")
        finally:
            self._restore(trainer)

    def _finalise(self, trainer: pl.Trainer, status: str) -> None:
        self.report = assemble_report(
            trainer, self.accountant, self._samples, status=status, checkpoint_saves=self._saves, gathered=self._ranks,
            deep_window=self._window.summary, flops=self._flops.flops if self._flops is not None else None,
            timer=self._timer, recompiled_graphs=compiled_graphs() - self._graphs_start,
            hook_locations=self._module_hooks.locations,
            notes=skipped_hooks_notes(self._skipped_hooks) if self.skip_empty_hooks else [],
        )
        if trainer.is_global_zero:
            render.write_report(self.report, self._resolved_dir, self.filename, self.formats)
            if self.console:
                render.print_console(self.report)

    def _close_window(self) -> None:
        if self._window.active:
            done = max(self._ended() - self._window.start, 1)
            self._window.close(self._trace_path() if self.trace else None, self.trace_max_mb, steps_done=done)

    def _trace_path(self) -> str:
        return os.path.join(self._resolved_dir, f"{self.filename}-trace.json")

    @override
    def state_dict(self) -> dict[str, Any]:
        return {}


# Lightning calls the checkpoint hooks directly (without its callable() check): they stay methods
_UNUSED_HOOKS = tuple(
    hook for hook in dir(Callback)
    if hook.startswith("on_") and callable(getattr(Callback, hook))
    and getattr(BottleneckProfiler, hook) is getattr(Callback, hook)
    and hook not in ("on_save_checkpoint", "on_load_checkpoint")
)
