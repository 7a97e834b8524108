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

On a GPU (``--device cuda``, or ``auto`` when one is present) the models are sized at start so that
a step holds ~1 ms and ~4 ms of GPU work (the batch is scaled from a timed forward/backward/step),
and a fit's cost is its wall time per steady-state step (the host waits for the device once, at the
end); the configurations are no profiler, SimpleProfiler and BottleneckProfiler (and, without
``--quick``, its ``skip_empty_hooks=True`` opt-in).

Targets: BottleneckProfiler costs no more than SimpleProfiler, and at most 2 % on the ~5 ms (CPU) or
~4 ms (GPU) step.

Usage: ``python benchmarks/profiler_overhead.py [--quick] [--rounds N] [--device {auto,cpu,cuda}]``
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
from collections.abc import Callable

import lightning.pytorch as pl
import torch
from lightning.pytorch.profilers import PyTorchProfiler, SimpleProfiler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_optkit import BottleneckProfiler

WARMUP = 10
#: "bottleneck" is BottleneckProfiler() (the measurement alone); "skip_hooks" is its opt-in
#: skip_empty_hooks=True, which lets Lightning skip the empty per-batch hooks (a faster program)
KINDS = ("none", "simple", "pytorch", "bottleneck", "skip_hooks")
#: On a GPU: the torch.profiler-based PyTorchProfiler is left out (minutes of trace processing)
CUDA_KINDS = ("none", "simple", "bottleneck", "skip_hooks")


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


def step_cost(kind: str, template: Model, loader: DataLoader, tmp: str, device: str = "cpu") -> tuple[float, float]:
    """Seconds per steady-state step (thread CPU time on a CPU, wall time on a GPU) and median step interval."""
    model = copy.deepcopy(template)
    callbacks = []
    profiler = None
    if kind == "simple":
        profiler = SimpleProfiler()
    elif kind == "pytorch":
        profiler = PyTorchProfiler(dirpath=tmp, filename="trace", export_to_chrome=False)
    elif kind == "bottleneck":  # the defaults
        callbacks.append(BottleneckProfiler(dirpath=tmp, console=False))
    elif kind == "skip_hooks":
        callbacks.append(BottleneckProfiler(dirpath=tmp, console=False, skip_empty_hooks=True))
    trainer = pl.Trainer(accelerator=device, devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, profiler=profiler,
                         callbacks=callbacks)
    trainer.fit(model, loader)
    wall = model.stamps[WARMUP:]
    if device == "cuda":  # the last stamp is taken before the last step: the device has caught up by then
        torch.cuda.synchronize()
        return ((wall[-1] - wall[0]) / (len(wall) - 1), statistics.median(b - a for a, b in zip(wall, wall[1:])))
    return ((model.cpu_marks[1] - model.cpu_marks[0]) / (len(wall) - 1),
            statistics.median(b - a for a, b in zip(wall, wall[1:])))


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:  # one round: no spread to show
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def median_interval(values: list[float]) -> tuple[float, float]:
    """A distribution-free ~95 % confidence interval of the median: two order statistics around it."""
    ordered = sorted(values)
    k = max(int(len(ordered) / 2 - 0.98 * math.sqrt(len(ordered))), 0)
    return ordered[k], ordered[len(ordered) - 1 - k]


def gpu_batch(features: int, hidden: int, target_ms: float) -> int:
    """A batch size whose forward, backward and SGD step take about ``target_ms`` on the current GPU."""
    model = Model(features, hidden, 2).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    probe = 1024

    def run(n: int) -> None:
        x, y = torch.randn(probe, features, device="cuda"), torch.randn(probe, 1, device="cuda")
        for _ in range(n):
            nn.functional.mse_loss(model.net(x), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    run(5)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    run(20)
    end.record()
    end.synchronize()
    per_step = start.elapsed_time(end) / 20
    return max(64, int(round(probe * target_ms / per_step / 64)) * 64)


def plan(device: str, quick: bool, rounds: int | None,
         batch_for: Callable[[int, int, float], int] = gpu_batch) -> tuple[tuple[str, ...], dict[str, tuple[int, ...]]]:
    """The configurations and the models ``{label: (features, hidden, batch, steps, rounds)}`` to run."""
    if device == "cuda":  # the batch sets the GPU work of a step: ~1 ms and ~4 ms on this GPU
        return (CUDA_KINDS[:3] if quick else CUDA_KINDS,
                {"~1 ms step": (512, 2048, batch_for(512, 2048, 1.0), 100 if quick else 400, rounds or (3 if quick else 15)),
                 "~4 ms step": (512, 4096, batch_for(512, 4096, 4.0), 60 if quick else 250, rounds or (3 if quick else 11))})
    # short fits, many rounds (the spread is per fit, not per step)
    return KINDS, {"~1 ms step": (16, 32, 8, 150 if quick else 400, rounds or (5 if quick else 41)),
                   "~5 ms step": (256, 768, 128, 60 if quick else 150, rounds or (3 if quick else 21))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and steps (a smoke run)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of interleaved fits (default on a CPU 41 and 21, on a GPU 15 and 11)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where the models train: auto = cuda when available, else cpu")
    args = parser.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available (use --device cpu or auto)")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    kinds, models = plan(device, args.quick, args.rounds)
    unit = "ms/step wall" if device == "cuda" else "ms/step CPU"
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        for label, (features, hidden, batch, steps, rounds) in models.items():
            template = Model(features, hidden, steps)
            data = TensorDataset(torch.randn(batch * steps, features), torch.randn(batch * steps, 1))
            loader = DataLoader(data, batch_size=batch, pin_memory=device == "cuda")
            cpu: dict[str, list[float]] = {k: [] for k in kinds}
            wall: dict[str, list[float]] = {k: [] for k in kinds}
            if device == "cuda":
                step_cost("none", template, loader, tmp, device)  # CUDA context, cuBLAS handles: not measured
            for _ in range(rounds):
                order = list(kinds)
                rng.shuffle(order)
                for kind in order:
                    c, w = step_cost(kind, template, loader, tmp, device)
                    cpu[kind].append(c)
                    wall[kind].append(w)
            print(f"{label} ({device}, batch {batch}): no profiler {1e3 * statistics.median(cpu['none']):.3f} {unit}, "
                  f"{1e3 * statistics.median(wall['none']):.3f} ms median step ({rounds} interleaved rounds "
                  f"x {steps} steps)")
            paired: dict[str, float] = {}
            for kind in kinds[1:]:
                # paired: each round's ratio to that round's fit without a profiler (cancels drift)
                ratios = [c / n for c, n in zip(cpu[kind], cpu["none"])]
                q1, paired[kind], q3 = quartiles(ratios)
                wall_ratio = statistics.median(w / n for w, n in zip(wall[kind], wall["none"]))
                print(f"  {kind:>10}: paired {unit.split()[-1]} ratio {paired[kind]:.3f} (IQR {q1:.3f}-{q3:.3f}), "
                      f"paired median-step ratio {wall_ratio:.3f}")
            for kind in [k for k in ("bottleneck", "skip_hooks") if k in kinds]:
                head = [b / s for b, s in zip(cpu[kind], cpu["simple"])]
                q1, q2, q3 = quartiles(head)
                wins = sum(h <= 1.0 for h in head)
                low, high = median_interval(head)
                print(f"  {kind} / simple, paired by round: {q2:.3f} (IQR {q1:.3f}-{q3:.3f}, 95 % interval of the "
                      f"median {low:.3f}-{high:.3f}); {kind} the cheaper in {wins} of {rounds} rounds")
            tag = label.strip("~").replace(" ", "_")
            target = "<= SimpleProfiler" if label.startswith("~1") else "<= 1.02 and <= SimpleProfiler"
            extra = (f" (skip_empty_hooks=True opt-in: {paired['skip_hooks']:.3f})" if "skip_hooks" in paired else "")
            pytorch = f", PyTorchProfiler {paired['pytorch']:.3f}" if "pytorch" in paired else ""
            prefix = "profiler_overhead_cuda" if device == "cuda" else "profiler_overhead"
            print(f"RATIO {prefix}_{tag} BottleneckProfiler {paired['bottleneck']:.3f}{extra}, SimpleProfiler "
                  f"{paired['simple']:.3f}{pytorch} (paired {unit.split()[-1]} step-time ratio to no profiler; "
                  f"target {target})")


if __name__ == "__main__":
    main()
