"""BottleneckProfiler in real (tiny) fits: files, chaining, exceptions, searches, bad input."""

from __future__ import annotations

import gc
import json
import os
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.profilers import PassThroughProfiler, SimpleProfiler
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from typing_extensions import override

from lightning_optkit import BottleneckProfiler, _trainer
from tests.helpers.models import TinyModel, make_trainer


def _fit(tmp_path, model: pl.LightningModule | None = None, **kwargs: Any) -> tuple[BottleneckProfiler, pl.Trainer]:
    trainer_kwargs = kwargs.pop("trainer", {})
    profiler = BottleneckProfiler(dirpath=str(tmp_path), console=False, **kwargs)
    trainer = make_trainer(callbacks=[profiler, *trainer_kwargs.pop("callbacks", [])], limit_train_batches=10,
                           **trainer_kwargs)
    trainer.fit(model or TinyModel(n_loader=80))
    return profiler, trainer


def test_report_files_and_attribute(tmp_path) -> None:
    profiler, trainer = _fit(tmp_path)
    names = sorted(os.listdir(tmp_path))
    assert names == ["bottlenecks.html", "bottlenecks.json", "bottlenecks.md"]
    report = json.loads((tmp_path / "bottlenecks.json").read_text())
    assert report == json.loads(json.dumps(profiler.report))
    assert report["status"] == "finished"
    assert report["steps_measured"] == 8  # 10 batches - 1 warm-up step - 1 FLOP-count step
    assert report["excluded"]["warmup"]["steps"] == 1 and report["excluded"]["flop_count"]["steps"] == 1
    assert report["throughput"]["batch_size"] == 8
    # Linear(16, 32) -> Linear(32, 1) on 8 samples: forward 8704 + backward 9216 FLOPs
    assert report["throughput"]["flops_per_step"] == 17920
    assert {"forward", "backward", "optimizer_step", "data_fetch", "logging"} <= set(report["phases"])
    assert all(os.path.getsize(tmp_path / n) < 100_000 for n in names)


def test_everything_is_restored_after_fit(tmp_path) -> None:
    model = TinyModel(n_loader=80)
    profiler, trainer = _fit(tmp_path, model)
    assert isinstance(trainer.profiler, PassThroughProfiler)
    assert "log" not in model.__dict__
    assert "step" not in trainer.optimizers[0].__dict__
    assert all(getattr(cb, "__self__", None) is not profiler.accountant for cb in gc.callbacks)


class _SlowAdamW(torch.optim.AdamW):
    """An optimizer whose own update is slow (the work is inside the class's ``step``)."""

    @override
    def step(self, closure: Any = None) -> Any:
        loss = super().step(closure)
        _busy(0.004)
        return loss


def _busy(seconds: float) -> None:
    import time

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class _SlowOptimizerModel(TinyModel):
    def __init__(self, scheduler: bool) -> None:
        super().__init__(n_loader=80)
        self.scheduler = scheduler
        self.seen: list[Any] = []

    @override
    def configure_optimizers(self) -> Any:
        optimizer = _SlowAdamW(self.parameters(), lr=1e-2)
        if not self.scheduler:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 5)}

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        optimizer = self.trainer.optimizers[0]
        self.seen.append(("step" in optimizer.__dict__, len(optimizer._optimizer_step_pre_hooks)))


@pytest.mark.parametrize("scheduler", [False, True], ids=["hooks", "instance-step"])
def test_optimizer_step_is_timed_with_or_without_an_instance_step(tmp_path, scheduler: bool) -> None:
    model = _SlowOptimizerModel(scheduler)
    profiler, trainer = _fit(tmp_path, model)
    optimizer = trainer.optimizers[0]
    # a plain optimizer gets step hooks and keeps its attributes; one whose ``step`` an LR scheduler
    # wrapped on the instance is timed through that attribute, so the scheduler's wrapper is kept after
    assert model.seen[-1] == ((True, 0) if scheduler else (False, 1))
    assert len(optimizer._optimizer_step_pre_hooks) == len(optimizer._optimizer_step_post_hooks) == 0
    assert ("step" in optimizer.__dict__) == scheduler
    phases = profiler.report["phases"]
    assert phases["optimizer_step"]["seconds"] >= 8 * 0.004
    assert profiler.report["findings"][0]["code"] == "optimizer"


def test_chains_with_the_users_profiler(tmp_path) -> None:
    user = SimpleProfiler()
    profiler, trainer = _fit(tmp_path, trainer={"profiler": user})
    assert trainer.profiler is user
    assert len(user.recorded_durations["run_training_batch"]) == 10
    assert len(user.recorded_durations["[Strategy]SingleDeviceStrategy.training_step"]) == 10
    assert profiler.report["steps_measured"] == 8


def test_second_fit_does_not_wrap_twice(tmp_path) -> None:
    profiler = BottleneckProfiler(dirpath=str(tmp_path), console=False)
    trainer = make_trainer(callbacks=[profiler], limit_train_batches=4, max_epochs=1)
    trainer.fit(TinyModel())
    trainer.fit_loop.max_epochs = 2
    trainer.fit(TinyModel())
    assert isinstance(trainer.profiler, PassThroughProfiler)
    assert profiler.report["steps_measured"] == 2


class _Boom(TinyModel):
    def __init__(self) -> None:
        super().__init__(n_loader=80)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if batch_idx == 6:  # steps 0-5 complete, step 6 fails
            raise RuntimeError("boom")
        return super().training_step(batch, batch_idx)


def test_exception_still_leaves_a_report(tmp_path) -> None:
    profiler = BottleneckProfiler(dirpath=str(tmp_path), console=False)
    trainer = make_trainer(callbacks=[profiler], limit_train_batches=10)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(_Boom())
    report = json.loads((tmp_path / "bottlenecks.json").read_text())
    assert report["status"] == "interrupted: RuntimeError: boom"
    assert report["steps_measured"] == 5  # the failing step counts up to the failure
    assert isinstance(trainer.profiler, PassThroughProfiler)


class _Search(pl.Callback):
    """Spends batches ``first`` to ``last`` on the search ``name`` (``first=None``: from train start)."""

    def __init__(self, name: str, first: int | None, last: int) -> None:
        self.name, self.first, self.last = name, first, last

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.first is None:
            _trainer.set_search_phase(trainer, self.name)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, index: int) -> None:
        if index == self.first:
            _trainer.set_search_phase(trainer, self.name)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if args[-1] == self.last:
            _trainer.set_search_phase(trainer, None)


class _Race(_Search):
    """Marks the first four steps as spent on a search and records a decision."""

    def __init__(self) -> None:
        super().__init__("optimizer_race", None, 3)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        _trainer.record_decision(trainer, "AutoOptimizer", {"optimizer": "adamw", "lr": 0.01})


def test_search_steps_and_decisions(tmp_path) -> None:
    profiler, _ = _fit(tmp_path, warmup_steps=0, measure_flops=False, trainer={"callbacks": [_Race()]})
    report = profiler.report
    assert report["excluded"]["optimizer_race"]["steps"] == 4
    assert report["steps_measured"] == 6
    assert report["decisions"] == {"AutoOptimizer": {"optimizer": "adamw", "lr": 0.01}}
    assert "AutoOptimizer" in (tmp_path / "bottlenecks.md").read_text()


def test_a_search_after_the_warm_up_is_excluded(tmp_path) -> None:
    # the phase is set in batch 5's start hook, after that step opened: the profiler counts it from batch 6
    profiler, _ = _fit(tmp_path, warmup_steps=2, measure_flops=False, trainer={"callbacks": [_Search("precision_probe", 5, 7)]})
    report = profiler.report
    assert report["excluded"]["warmup"]["steps"] == 2
    assert report["excluded"]["precision_probe"]["steps"] == 2
    assert report["steps_measured"] == 6


class _Syncing(TinyModel):
    def __init__(self) -> None:
        super().__init__(n_loader=80)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        if loss.item() > 1e9:  # a host sync every step
            print("large")
        return loss


def test_deep_window_counts_host_syncs_on_cpu(tmp_path) -> None:
    profiler, _ = _fit(tmp_path, _Syncing(), deep_window_steps=3, deep_window_start=3, trace=True)
    window = profiler.report["deep_window"]
    assert window["steps"] == 3
    assert window["sync_calls_per_step"] >= 1
    assert any("test_callback.py" in site["where"] for site in window["sync_sites"]), window
    assert window["top_operators"]
    assert window["trace"] == "bottlenecks-trace.json"
    assert (tmp_path / "bottlenecks-trace.json").exists()
    host_sync = next(f for f in profiler.report["findings"] if f["code"] == "host_sync")
    assert host_sync["severity"] == "low"  # counted on CPU; it would stall a GPU
    assert profiler.report["excluded"]["deep_window"]["steps"] == 3


def test_oversized_trace_is_deleted(tmp_path) -> None:
    with pytest.warns(UserWarning, match="trace_max_mb"):
        profiler, _ = _fit(tmp_path, deep_window_steps=2, deep_window_start=2, trace=True, trace_max_mb=1e-6)
    assert not (tmp_path / "bottlenecks-trace.json").exists()
    assert "trace" not in profiler.report["deep_window"]


def test_deep_window_longer_than_the_run_warns(tmp_path) -> None:
    with pytest.warns(UserWarning, match="deep_window_start=8, deep_window_steps=5"):
        profiler, _ = _fit(tmp_path, deep_window_steps=5, deep_window_start=8)
    assert profiler.report["deep_window"]["steps"] == 2


def test_default_dirpath_and_logged_shares(tmp_path) -> None:
    profiler = BottleneckProfiler(console=False, log_shares=True, sample_every_n_steps=2)
    trainer = make_trainer(callbacks=[profiler], limit_train_batches=10, default_root_dir=str(tmp_path),
                           logger=CSVLogger(str(tmp_path), name="run"), log_every_n_steps=1)
    trainer.fit(TinyModel())
    log_dir = trainer.log_dir
    assert os.path.exists(os.path.join(log_dir, "bottlenecks.json"))
    header = open(os.path.join(log_dir, "metrics.csv")).readline()
    assert "bottleneck/forward" in header and "bottleneck/data_fetch" in header


def test_default_dirpath_without_logger_is_root_dir(tmp_path) -> None:
    profiler = BottleneckProfiler(console=False, formats=["json"])
    trainer = make_trainer(callbacks=[profiler], limit_train_batches=4, default_root_dir=str(tmp_path))
    trainer.fit(TinyModel())
    assert sorted(os.listdir(tmp_path)) == ["bottlenecks.json"]


def test_console_summary(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    profiler = BottleneckProfiler(dirpath=str(tmp_path), formats=["md"])
    make_trainer(callbacks=[profiler], limit_train_batches=6).fit(TinyModel())
    assert "phases:" in capsys.readouterr().out


def test_unwritable_directory_fails_at_setup(tmp_path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    model = TinyModel()
    profiler = BottleneckProfiler(dirpath=str(blocker / "reports"), console=False)
    trainer = make_trainer(callbacks=[profiler], limit_train_batches=4)
    with pytest.raises(MisconfigurationException, match=r"BottleneckProfiler\(dirpath=.*is not writable"):
        trainer.fit(model)
    assert trainer.global_step == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sample_every_n_steps": 0}, r"sample_every_n_steps=0 is not allowed: expected an integer >= 1"),
        ({"sample_every_n_steps": -5}, "sample_every_n_steps=-5"),
        ({"sync_every_n_steps": 0}, "sync_every_n_steps=0"),
        ({"timeline_points": 0}, "timeline_points=0"),
        ({"warmup_steps": -1}, r"warmup_steps=-1 is not allowed: expected an integer >= 0"),
        ({"deep_window_steps": -2}, "deep_window_steps=-2"),
        ({"deep_window_start": -1}, "deep_window_start=-1"),
        ({"formats": ["json", "pdf"]}, r"formats\[1\]='pdf' is not one of 'json', 'md', 'html'"),
        ({"formats": []}, r"formats=\[\] is not allowed: expected a non-empty list"),
        ({"filename": "a/b"}, "filename='a/b' is not allowed: expected a plain file name"),
        ({"trace_max_mb": 0}, r"trace_max_mb=0 is not allowed: expected a finite number in \(0.0, inf\)"),
        ({"device_timing": "gpu"}, "device_timing='gpu' is not one of 'auto', 'events', 'host', 'off'"),
        ({"skip_empty_hooks": "yes"}, "skip_empty_hooks='yes' is not allowed: expected True or False"),
        ({"skip_empty_hooks": 1}, "skip_empty_hooks=1 is not allowed: expected True or False"),
    ],
)
def test_bad_input(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BottleneckProfiler(**kwargs)


def test_device_time_on_cpu_and_quiet_hooks(tmp_path) -> None:
    class Hooked(TinyModel):
        def on_train_batch_end(self, *args: Any) -> None:
            pass

    profiler, _ = _fit(tmp_path, Hooked(n_loader=80))
    device = profiler.report["device_time"]
    phases = profiler.report["phases"]
    assert device == {k: phases[k]["seconds"] for k in ("forward", "backward", "optimizer_step")}
    timed, _ = _fit(tmp_path / "host", Hooked(n_loader=80), device_timing="host")
    device = timed.report["device_time"]  # the timer code path, with the host clock as backend
    assert device["forward"] > 0 and device["backward"] > 0 and device["optimizer_step"] > 0
    phases = profiler.report["phases"]
    # an overridden hook is timed by name; an empty default one is not
    assert "hook:Hooked.on_train_batch_end" in phases
    assert "hook:Hooked.on_train_batch_start" not in phases
    assert "callback:ModelCheckpoint.on_train_batch_end" not in phases


def test_cuda_path_with_mocked_device(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning_optkit.callbacks.bottleneck_profiler._report import peak_flops
    from lightning_optkit.profiling import sampling

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device=None: type("P", (), {"name": "NVIDIA A100", "total_memory": 40 * 2**30})())
    info = sampling.device_info(torch.device("cuda", 0), "32-true", None)
    assert info.type == "cuda" and info.capability == (8, 0) and info.total_memory == 40 * 2**30
    assert peak_flops(torch.device("cpu"), "32-true") is None


def test_logging_stays_timed_when_another_callback_swaps_log(tmp_path) -> None:
    class Silencer(pl.Callback):
        def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            pl_module.__dict__["log"] = lambda *a, **k: None
            pl_module.__dict__.pop("log")

    profiler, _ = _fit(tmp_path, trainer={"callbacks": [Silencer()]})
    assert profiler.report["phases"]["logging"]["seconds"] > 0
    assert profiler.accountant.log_calls == profiler.report["steps_measured"] == 8


def test_resume_from_checkpoint_with_the_profiler(tmp_path) -> None:
    profiler, trainer = _fit(tmp_path, trainer={"enable_checkpointing": True, "default_root_dir": str(tmp_path)})
    assert profiler.report["steps_measured"] == 8
    ckpt = str(tmp_path / "manual.ckpt")
    trainer.save_checkpoint(ckpt)
    again = BottleneckProfiler(dirpath=str(tmp_path / "again"), console=False)
    resumed = make_trainer(callbacks=[again], limit_train_batches=10, max_epochs=2)
    resumed.fit(TinyModel(n_loader=80), ckpt_path=ckpt)
    assert again.report["steps_measured"] == 8


@pytest.mark.gpu
def test_cuda_run_uses_events_and_the_allocator(tmp_path) -> None:
    profiler = BottleneckProfiler(dirpath=str(tmp_path), console=False)
    trainer = make_trainer(callbacks=[profiler], limit_train_batches=10, accelerator="cuda", deterministic=False)
    trainer.fit(TinyModel(n_loader=80))
    report = profiler.report
    assert report["memory"]["kind"] == "cuda_allocated"
    assert report["device"]["type"] == "cuda" and report["device"]["capability"]
    assert report["device_time"]["forward"] > 0


def test_event_timer_path_with_fake_cuda_events(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    class Event:
        """Completes at once (a GPU that keeps up); times from the host clock."""

        def __init__(self, enable_timing: bool = False) -> None:
            self.t = 0.0

        def record(self) -> None:
            self.t = time.perf_counter()

        def query(self) -> bool:
            return True

        def elapsed_time(self, other: "Event") -> float:
            return (other.t - self.t) * 1e3

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: pytest.fail("no synchronisation expected on CPU"))
    profiler, _ = _fit(tmp_path, device_timing="events")
    device = profiler.report["device_time"]
    assert device["forward"] > 0 and device["backward"] > 0 and device["optimizer_step"] > 0
    assert profiler._timer.dropped == 0


def test_failure_before_the_first_step_still_reports(tmp_path) -> None:
    class NoOptimizer(TinyModel):
        @override
        def configure_optimizers(self) -> Any:
            raise RuntimeError("no optimizer today")

    profiler = BottleneckProfiler(dirpath=str(tmp_path), console=False)
    trainer = make_trainer(callbacks=[profiler], limit_train_batches=4)
    with pytest.raises(RuntimeError, match="no optimizer today"):
        trainer.fit(NoOptimizer())
    report = json.loads((tmp_path / "bottlenecks.json").read_text())
    assert report["steps_measured"] == 0 and report["findings"] == []
    assert isinstance(trainer.profiler, PassThroughProfiler)


def test_per_batch_hooks_run_only_on_batches_with_work(tmp_path) -> None:
    calls: list[tuple[str, int]] = []

    class Counting(BottleneckProfiler):
        @override
        def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                                 batch_idx: int) -> None:
            calls.append(("start", batch_idx))
            super().on_train_batch_start(trainer, pl_module, batch, batch_idx)

        @override
        def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                               batch_idx: int) -> None:
            calls.append(("end", batch_idx))
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    profiler = Counting(dirpath=str(tmp_path), console=False, sample_every_n_steps=5)
    trainer = make_trainer(callbacks=[profiler], limit_train_batches=12, max_epochs=2)
    trainer.fit(TinyModel(n_loader=96))
    # Lightning skips the hooks while they are None: batch starts run for the log wrapper (0) and the
    # FLOP-count step (1); batch ends for the warm-up and FLOP-count steps, then only where a sample is
    # due (every 5 batches over both epochs of 12); the samples land where they always did
    assert [i for kind, i in calls if kind == "start"] == [0, 1]
    assert [i for kind, i in calls if kind == "end"] == [0, 1, 2, 4, 9, 2, 7]
    assert [x for x, _ in profiler._samples.memory.samples()] == [0, 1, 5, 10, 15, 20, 24]
    assert profiler.report["steps_measured"] == 22
    assert "on_train_batch_end" not in profiler.__dict__ and "on_train_batch_start" not in profiler.__dict__
