"""The planted-bottleneck zoo: small CPU runs with one known cause each, and their clean twins.

Run one scenario per fresh process: ``python tests/helpers/profiler_zoo.py <scenario> <out_dir>``,
or several with ``python tests/helpers/profiler_zoo.py --many <out_root> <scenario>...``: the
libraries are imported once, then each scenario runs in its own forked child (a fresh heap: no
scenario runs in the parent), two at a time. The BottleneckProfiler writes
``<out_dir>/bottlenecks.json``. ``EXPECTED`` says which finding
codes each scenario must put first (in order); clean twins expect nothing of medium or high severity.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from lightning_optkit import BottleneckProfiler  # noqa: E402

__all__ = ["EXPECTED", "SCENARIOS", "DDP_SCENARIOS", "run", "run_many"]

#: scenario -> the finding codes that must lead the report, in order ([] = clean twin)
EXPECTED: dict[str, list[str]] = {
    "clean": [],
    "clean_val_ckpt": [],
    "slow_data": ["dataloader"],
    "slow_callback": ["callback"],
    "heavy_log": ["logging"],
    "slow_optimizer": ["optimizer"],
    "val_often": ["validation"],
    "ckpt_often": ["checkpoint"],
    "batch1": ["small_steps"],
    "leak": ["memory_growth"],
    "mixture": ["dataloader", "callback"],
    "recompile": ["recompilation"],
    "compiled_clean": [],
    "ddp_slow_rank": ["rank_imbalance"],
    "ddp_clean": [],
}
DDP_SCENARIOS = ("ddp_slow_rank", "ddp_clean")
SCENARIOS = tuple(EXPECTED)

FEATURES, HIDDEN = 64, 512


def sleep_ms(ms: float) -> None:
    """Busy-wait ``ms`` milliseconds (steadier than ``time.sleep`` for short waits)."""
    end = time.perf_counter() + ms / 1e3
    while time.perf_counter() < end:
        pass


class Batches(TensorDataset):
    """Whole batches stored ready-made (a cheap, healthy data pipeline)."""


class ZooModel(pl.LightningModule):
    """An MLP regressor with knobs for each planted cause."""

    def __init__(self, batch_size: int = 512, n_batches: int = 40, logs: int = 1, leak_mb: int = 0,
                 slow_optimizer_ms: float = 0.0, val_batches: int = 0, compile_shapes: int = 0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                                 nn.Linear(HIDDEN, 1))
        self.batch_size, self.n_batches, self.logs = batch_size, n_batches, logs
        self.leak_mb, self.slow_optimizer_ms = leak_mb, slow_optimizer_ms
        self.val_batches, self.compile_shapes = val_batches, compile_shapes
        self.kept: list[torch.Tensor] = []
        if compile_shapes:
            self.net = torch.compile(self.net, dynamic=False, backend="eager")

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self.compile_shapes > 1:  # a different batch length on each step
            keep = x.shape[0] - (batch_idx % self.compile_shapes)
            x, y = x[:keep], y[:keep]
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("loss", loss)
        for i in range(self.logs - 1):
            self.log(f"extra_{i}", loss + i)
        if self.leak_mb:
            self.kept.append(torch.ones(self.leak_mb * 2**18))
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x), y))

    def _data(self, batches: int, seed: int) -> Batches:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(batches, self.batch_size, FEATURES, generator=g)
        return Batches(x, x[..., :1] * 0.5)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self._data(self.n_batches, 0), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self._data(max(self.val_batches, 1), 1), batch_size=None)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        optimizer = torch.optim.SGD(self.parameters(), lr=1e-3, momentum=0.9)
        if self.slow_optimizer_ms:
            step, ms = optimizer.step, self.slow_optimizer_ms

            def slow_step(*args: Any, **kwargs: Any) -> Any:
                sleep_ms(ms)
                return step(*args, **kwargs)

            optimizer.step = slow_step  # type: ignore[method-assign]
        return optimizer


class SlowCollateModel(ZooModel):
    """A data pipeline whose collate function takes ``collate_ms`` per batch."""

    def __init__(self, collate_ms: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.collate_ms = collate_ms

    def train_dataloader(self) -> DataLoader:
        ms = self.collate_ms

        def collate(batch: Any) -> Any:
            sleep_ms(ms)
            return batch

        return DataLoader(self._data(self.n_batches, 0), batch_size=None, collate_fn=collate)


class SlowHook(pl.Callback):
    """A callback whose ``on_train_batch_end`` takes ``ms`` (on ``only_rank`` if given)."""

    def __init__(self, ms: float, only_rank: int | None = None) -> None:
        self.ms, self.only_rank = ms, only_rank

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.only_rank is None or trainer.global_rank == self.only_rank:
            sleep_ms(self.ms)


def run(scenario: str, out_dir: str) -> None:
    """Run ``scenario`` and let the profiler write its report into ``out_dir``."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    model_kwargs: dict[str, Any] = {}
    trainer_kwargs: dict[str, Any] = dict(limit_val_batches=0, num_sanity_val_steps=0)
    callbacks: list[pl.Callback] = []
    profiler_kwargs: dict[str, Any] = dict(dirpath=out_dir, console=False, sample_every_n_steps=5,
                                           sync_every_n_steps=20, warmup_steps=2)
    model_cls: type[ZooModel] = ZooModel
    if scenario == "clean_val_ckpt":
        model_kwargs.update(val_batches=2)
        trainer_kwargs.update(limit_val_batches=2, enable_checkpointing=True, default_root_dir=out_dir)
    elif scenario == "slow_data":
        model_cls, model_kwargs = SlowCollateModel, dict(collate_ms=20.0)
    elif scenario == "slow_callback":
        callbacks.append(SlowHook(20.0))
    elif scenario == "heavy_log":
        model_kwargs.update(logs=40)
    elif scenario == "slow_optimizer":
        model_kwargs.update(slow_optimizer_ms=20.0)
    elif scenario == "val_often":
        model_kwargs.update(val_batches=20)
        trainer_kwargs.update(limit_val_batches=20, val_check_interval=3)
    elif scenario == "ckpt_often":
        from lightning.pytorch.callbacks import ModelCheckpoint

        callbacks.append(ModelCheckpoint(dirpath=os.path.join(out_dir, "ckpt"), every_n_train_steps=1, save_top_k=-1))
        trainer_kwargs.update(enable_checkpointing=True)
    elif scenario == "batch1":
        model_kwargs.update(batch_size=1, n_batches=300)
    elif scenario == "leak":
        model_kwargs.update(leak_mb=6, n_batches=60)
    elif scenario == "mixture":
        model_cls, model_kwargs = SlowCollateModel, dict(collate_ms=24.0)
        callbacks.append(SlowHook(10.0))
    elif scenario in ("recompile", "compiled_clean"):
        model_kwargs.update(compile_shapes=6 if scenario == "recompile" else 1, n_batches=30)
    elif scenario == "ddp_slow_rank":
        callbacks.append(SlowHook(20.0, only_rank=1))
        trainer_kwargs.update(strategy="ddp", devices=2)
    elif scenario == "ddp_clean":
        trainer_kwargs.update(strategy="ddp", devices=2)
    elif scenario != "clean":
        raise SystemExit(f"unknown scenario {scenario!r}; choose from {list(EXPECTED)}")
    callbacks.append(BottleneckProfiler(**profiler_kwargs))
    options: dict[str, Any] = dict(accelerator="cpu", devices=1, max_epochs=1, logger=False,
                                   enable_checkpointing=False, enable_progress_bar=False,
                                   enable_model_summary=False, callbacks=callbacks)
    options.update(trainer_kwargs)
    trainer = pl.Trainer(**options)
    trainer.fit(model_cls(**model_kwargs))


def run_many(out_root: str, scenarios: list[str], workers: int = 2, timeout: float = 120.0) -> dict[str, str]:
    """Run each scenario in a forked child, ``workers`` at a time; returns scenario -> "ok" or the failure."""
    import multiprocessing as mp

    context = mp.get_context("fork")
    pending = list(scenarios)
    running: dict[str, tuple[Any, float]] = {}
    status: dict[str, str] = {}
    while pending or running:
        while pending and len(running) < workers:
            name = pending.pop(0)
            out = os.path.join(out_root, name)
            os.makedirs(out, exist_ok=True)
            child = context.Process(target=run, args=(name, out))
            child.start()
            running[name] = (child, time.monotonic())
        for name, (child, started) in list(running.items()):
            if child.exitcode is not None:
                status[name] = "ok" if child.exitcode == 0 else f"exit code {child.exitcode}"
                del running[name]
            elif time.monotonic() - started > timeout:
                child.kill()
                child.join()
                status[name] = f"timed out after {timeout} s"
                del running[name]
        time.sleep(0.05)
    return status


if __name__ == "__main__":
    if sys.argv[1] == "--many":
        import json

        result = run_many(sys.argv[2], sys.argv[3:])
        print(json.dumps(result))
        sys.exit(0 if all(v == "ok" for v in result.values()) else 1)
    run(sys.argv[1], sys.argv[2])
