"""Step-time overhead of BottleneckProfiler against no profiler, SimpleProfiler and PyTorchProfiler.

All configurations run interleaved (shuffled within each round) in one process, on two models: a
~1 ms step and a ~5 ms step. The steady-state step time (median interval) is measured from the module's own
``on_train_batch_start`` hook (called in every configuration), after a warm-up, and the script
prints the median ratio to the run without a profiler.

Targets: BottleneckProfiler costs no more than SimpleProfiler, and at most 2 % on the ~5 ms step.

Usage: ``python benchmarks/profiler_overhead.py [--quick]``
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
import time
import warnings

import lightning.pytorch as pl
import torch
from lightning.pytorch.profilers import PyTorchProfiler, SimpleProfiler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_optkit import BottleneckProfiler

WARMUP = 10


class Model(pl.LightningModule):
    """An MLP whose size sets the step time; records the time at each batch start."""

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))
        self.stamps: list[float] = []
        self.cpu_stamps: list[float] = []

    def on_train_batch_start(self, batch, batch_idx):  # type: ignore[override]
        self.stamps.append(time.perf_counter())
        self.cpu_stamps.append(time.thread_time())

    def training_step(self, batch, batch_idx):  # type: ignore[override]
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):  # type: ignore[override]
        return torch.optim.SGD(self.parameters(), lr=1e-3)


def step_time(kind: str, features: int, hidden: int, batch: int, steps: int, tmp: str) -> tuple[float, float]:
    """Wall and CPU seconds per steady-state step of one fit with profiler ``kind``."""
    data = TensorDataset(torch.randn(batch * steps, features), torch.randn(batch * steps, 1))
    loader = DataLoader(data, batch_size=batch)
    model = Model(features, hidden)
    callbacks = []
    profiler = None
    if kind == "simple":
        profiler = SimpleProfiler()
    elif kind == "pytorch":
        profiler = PyTorchProfiler(dirpath=tmp, filename="trace", export_to_chrome=False)
    elif kind == "bottleneck":
        callbacks.append(BottleneckProfiler(dirpath=tmp, console=False))
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, profiler=profiler,
                         callbacks=callbacks)
    trainer.fit(model, loader)
    # median intervals are robust to the odd step slowed by another process on a shared machine;
    # the thread's CPU time per step is not inflated when that process takes the core away
    wall, cpu = model.stamps[WARMUP:], model.cpu_stamps[WARMUP:]
    return (statistics.median(b - a for a, b in zip(wall, wall[1:])),
            (cpu[-1] - cpu[0]) / (len(cpu) - 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and steps (a smoke run)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    rounds, steps = (3, 80) if args.quick else (11, 300)
    models = {"~1 ms step": (16, 32, 8), "~5 ms step": (256, 768, 128)}
    kinds = ["none", "simple", "pytorch", "bottleneck"]
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        for label, (features, hidden, batch) in models.items():
            wall: dict[str, list[float]] = {k: [] for k in kinds}
            cpu: dict[str, list[float]] = {k: [] for k in kinds}
            for _ in range(rounds):
                order = kinds[:]
                rng.shuffle(order)
                for kind in order:
                    w, c = step_time(kind, features, hidden, batch, steps, tmp)
                    wall[kind].append(w)
                    cpu[kind].append(c)
            base, base_cpu = statistics.median(wall["none"]), statistics.median(cpu["none"])
            print(f"{label}: no profiler {1e3 * base:.3f} ms/step wall, {1e3 * base_cpu:.3f} ms/step CPU "
                  f"({rounds} interleaved rounds x {steps} steps)")
            paired: dict[str, float] = {}
            for kind in kinds[1:]:
                # paired: each round's ratio to that round's run without a profiler (cancels drift)
                paired[kind] = statistics.median(c / n for c, n in zip(cpu[kind], cpu["none"]))
                print(f"  {kind:>10}: wall ratio {statistics.median(wall[kind]) / base:.3f}, "
                      f"CPU ratio {statistics.median(cpu[kind]) / base_cpu:.3f}, "
                      f"paired CPU ratio {paired[kind]:.3f}")
            tag = label.strip("~").replace(" ", "_")
            target = "<= 1.02 and <= SimpleProfiler" if label.startswith("~5") else "<= SimpleProfiler"
            print(f"RATIO profiler_overhead_{tag} BottleneckProfiler {paired['bottleneck']:.3f}, "
                  f"SimpleProfiler {paired['simple']:.3f}, PyTorchProfiler {paired['pytorch']:.3f} "
                  f"(paired CPU step-time ratio to no profiler; target {target})")


if __name__ == "__main__":
    main()
