"""Step-time overhead of BottleneckProfiler against no profiler, SimpleProfiler and PyTorchProfiler.

All configurations run interleaved (shuffled within each round) in one process, on two models: a
~1 ms step and a ~5 ms step. Every fit starts from the same weights and data. The module's own
``on_train_batch_start`` hook (called in every configuration) stamps each step; after a warm-up,
a fit's cost per step is its thread CPU time per step (this includes periodic work such as
BottleneckProfiler's samples, and not the time another process takes the core away) and, for
reference, its median step interval.

A fit's step cost varies by one to two per cent from one fit to the next, even for the same
configuration: most of it stays the same for the whole fit (where the fit's objects land in memory),
so longer fits do not remove it, more fits do. The script therefore runs many short fits: each
round's fits are compared with that round's fit without a profiler (paired), and it prints the
median over rounds with the interquartile range of the paired ratios, how many rounds
BottleneckProfiler was the cheaper of the two, and a 95 % confidence interval of the median
BottleneckProfiler / SimpleProfiler ratio (from order statistics, no assumption on the distribution).

Targets: BottleneckProfiler costs no more than SimpleProfiler, and at most 2 % on the ~5 ms step.

Usage: ``python benchmarks/profiler_overhead.py [--quick] [--rounds N]``
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
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
#: "measure_only" is BottleneckProfiler(skip_empty_hooks=False): its measurement without the hooks it lets Lightning skip
KINDS = ("none", "simple", "pytorch", "bottleneck", "measure_only")


class Model(pl.LightningModule):
    """An MLP whose size sets the step time; stamps the start of each batch."""

    def __init__(self, features: int, hidden: int, steps: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))
        self.last = steps - 1
        self.stamps: list[float] = []
        self.cpu_marks: list[float] = []

    def on_train_batch_start(self, batch, batch_idx):  # type: ignore[override]
        self.stamps.append(time.perf_counter())
        if batch_idx == WARMUP or batch_idx == self.last:  # thread CPU time costs a system call: twice a fit
            self.cpu_marks.append(time.thread_time())

    def training_step(self, batch, batch_idx):  # type: ignore[override]
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):  # type: ignore[override]
        return torch.optim.SGD(self.parameters(), lr=1e-3)


def step_cost(kind: str, template: Model, loader: DataLoader, tmp: str) -> tuple[float, float]:
    """CPU seconds per steady-state step and median step interval of one fit with profiler ``kind``."""
    model = copy.deepcopy(template)
    callbacks = []
    profiler = None
    if kind == "simple":
        profiler = SimpleProfiler()
    elif kind == "pytorch":
        profiler = PyTorchProfiler(dirpath=tmp, filename="trace", export_to_chrome=False)
    elif kind == "bottleneck":  # the defaults
        callbacks.append(BottleneckProfiler(dirpath=tmp, console=False))
    elif kind == "measure_only":
        callbacks.append(BottleneckProfiler(dirpath=tmp, console=False, skip_empty_hooks=False))
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, profiler=profiler,
                         callbacks=callbacks)
    trainer.fit(model, loader)
    wall = model.stamps[WARMUP:]
    return ((model.cpu_marks[1] - model.cpu_marks[0]) / (len(wall) - 1),
            statistics.median(b - a for a, b in zip(wall, wall[1:])))


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def median_interval(values: list[float]) -> tuple[float, float]:
    """A distribution-free ~95 % confidence interval of the median: two order statistics around it."""
    ordered = sorted(values)
    k = max(int(len(ordered) / 2 - 0.98 * math.sqrt(len(ordered))), 0)
    return ordered[k], ordered[len(ordered) - 1 - k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and steps (a smoke run)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of interleaved fits (default 41 on the ~1 ms step and 21 on the ~5 ms step)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    # (features, hidden, batch, steps, rounds): short fits, many rounds (the spread is per fit, not per step)
    models = {"~1 ms step": (16, 32, 8, 150 if args.quick else 400, args.rounds or (5 if args.quick else 41)),
              "~5 ms step": (256, 768, 128, 60 if args.quick else 150, args.rounds or (3 if args.quick else 21))}
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        for label, (features, hidden, batch, steps, rounds) in models.items():
            template = Model(features, hidden, steps)
            data = TensorDataset(torch.randn(batch * steps, features), torch.randn(batch * steps, 1))
            loader = DataLoader(data, batch_size=batch)
            cpu: dict[str, list[float]] = {k: [] for k in KINDS}
            wall: dict[str, list[float]] = {k: [] for k in KINDS}
            for _ in range(rounds):
                order = list(KINDS)
                rng.shuffle(order)
                for kind in order:
                    c, w = step_cost(kind, template, loader, tmp)
                    cpu[kind].append(c)
                    wall[kind].append(w)
            print(f"{label}: no profiler {1e3 * statistics.median(cpu['none']):.3f} ms/step CPU, "
                  f"{1e3 * statistics.median(wall['none']):.3f} ms median step ({rounds} interleaved rounds "
                  f"x {steps} steps)")
            paired: dict[str, float] = {}
            for kind in KINDS[1:]:
                # paired: each round's ratio to that round's fit without a profiler (cancels drift)
                ratios = [c / n for c, n in zip(cpu[kind], cpu["none"])]
                q1, paired[kind], q3 = quartiles(ratios)
                wall_ratio = statistics.median(w / n for w, n in zip(wall[kind], wall["none"]))
                print(f"  {kind:>10}: paired CPU ratio {paired[kind]:.3f} (IQR {q1:.3f}-{q3:.3f}), "
                      f"paired median-step ratio {wall_ratio:.3f}")
            for kind in ("bottleneck", "measure_only"):
                head = [b / s for b, s in zip(cpu[kind], cpu["simple"])]
                q1, q2, q3 = quartiles(head)
                wins = sum(h <= 1.0 for h in head)
                low, high = median_interval(head)
                print(f"  {kind} / simple, paired by round: {q2:.3f} (IQR {q1:.3f}-{q3:.3f}, 95 % interval of the "
                      f"median {low:.3f}-{high:.3f}); {kind} the cheaper in {wins} of {rounds} rounds")
            tag = label.strip("~").replace(" ", "_")
            target = "<= 1.02 and <= SimpleProfiler" if label.startswith("~5") else "<= SimpleProfiler"
            print(f"RATIO profiler_overhead_{tag} BottleneckProfiler {paired['bottleneck']:.3f} (measurement alone, "
                  f"skip_empty_hooks=False: {paired['measure_only']:.3f}), SimpleProfiler {paired['simple']:.3f}, "
                  f"PyTorchProfiler {paired['pytorch']:.3f} (paired CPU step-time ratio to no profiler; target {target})")


if __name__ == "__main__":
    main()
