"""Throughput of AutoPrecision against every fixed precision, on this machine.

An MLP is trained for the same number of steps in each configuration: Lightning's ``32-true`` and
``bf16-mixed`` (``Trainer(precision=...)``), fp16 with loss scaling (``AutoPrecision("16-mixed")``;
Lightning maps ``16-mixed`` to bf16 on CPU) and ``AutoPrecision()`` (auto mode, probe included).
The configurations run interleaved (shuffled within each round) in one process. Throughput is
steps from ``on_train_start`` to ``on_train_end`` per second of this process's CPU time (one
training thread, no I/O: the cost of the steps, and not inflated when other processes share the
cores), so AutoPrecision pays for its probe steps; medians over rounds are compared. Wall-time
ratios are printed for reference.

Two workloads: a wide MLP (large matmuls: native bf16, where the CPU has it, pays off) and a narrow
one (per-op overhead dominates: autocast only adds casts, fp32 wins).

Claims (per workload):
* AutoPrecision's throughput over the best fixed precision's: target >= 0.95.
* Lightning's ``bf16-mixed`` over ``32-true``, for comparison (far below 1 on CPUs without native
  bf16).

Usage: ``python benchmarks/precision_choice.py [--quick]``
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import time
import warnings
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_optkit import AutoPrecision


class Model(pl.LightningModule):
    """A 3-layer MLP regressor; records the wall time of the training run."""

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, 10))
        self.seconds = self.cpu_seconds = 0.0

    def on_train_start(self) -> None:
        self._start = time.perf_counter(), time.process_time()

    def on_train_end(self) -> None:
        self.seconds = time.perf_counter() - self._start[0]
        self.cpu_seconds = time.process_time() - self._start[1]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):  # type: ignore[override]
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


CONFIGS = ("32-true", "bf16-mixed", "fp16+scaler", "AutoPrecision")


def run(config: str, steps: int, features: int, hidden: int, batch: int) -> tuple[float, float, str]:
    """Steps per wall second and per CPU second of one fit in ``config``, and its final precision."""
    torch.manual_seed(0)
    x = torch.randn(batch * 16, features)
    y = torch.randint(0, 10, (batch * 16,))
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False)
    kwargs: dict[str, Any] = {}
    plugin = None
    if config == "AutoPrecision":
        plugin = AutoPrecision(verbose=False)
        kwargs["plugins"] = [plugin]
    elif config == "fp16+scaler":
        plugin = AutoPrecision("16-mixed", verbose=False)
        kwargs["plugins"] = [plugin]
    else:
        kwargs["precision"] = config
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=steps, max_epochs=None, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0, **kwargs)
    model = Model(features, hidden)
    trainer.fit(model, loader)
    chosen = plugin.precision if plugin is not None else config
    return steps / model.seconds, steps / model.cpu_seconds, chosen


WORKLOADS = {
    # name: (features, hidden, batch); "wide" has matmuls large enough for native bf16 to pay off,
    # "narrow" is dominated by per-op overhead, where autocast only adds casts
    "wide": (256, 512, 128),
    "narrow": (64, 64, 32),
}


def measure(name: str, steps: int, rounds: int, rng: random.Random) -> None:
    """Interleave every configuration on one workload and print its table and ratios."""
    features, hidden, batch = WORKLOADS[name]
    wall: dict[str, list[float]] = {c: [] for c in CONFIGS}
    cpu: dict[str, list[float]] = {c: [] for c in CONFIGS}
    chosen: list[str] = []
    for _ in range(rounds):
        order = list(CONFIGS)
        rng.shuffle(order)
        for config in order:
            rate, cpu_rate, precision = run(config, steps, features=features, hidden=hidden, batch=batch)
            wall[config].append(rate)
            cpu[config].append(cpu_rate)
            if config == "AutoPrecision":
                chosen.append(precision)
    print(f"{name}: MLP {features}-{hidden}-{hidden}-10, batch {batch}, {steps} steps x {rounds} rounds")
    for config in CONFIGS:
        runs = ", ".join(f"{r:.0f}" for r in cpu[config])
        print(f"  {config:>14}: {statistics.median(cpu[config]):7.1f} steps per CPU-second (runs: {runs}); "
              f"wall {statistics.median(wall[config]):7.1f} steps/s")
    print(f"  AutoPrecision chose: {', '.join(chosen)}")
    # One training thread and no I/O: CPU time is the step's cost, and unlike wall time it does not
    # grow when other processes share the cores. Wall-time ratios are printed for reference.
    med = {c: statistics.median(v) for c, v in cpu.items()}
    fixed = {c: med[c] for c in CONFIGS if c != "AutoPrecision"}
    best = max(fixed, key=fixed.__getitem__)
    wall_med = {c: statistics.median(v) for c, v in wall.items()}
    print(f"  wall-time ratios: auto/{best} {wall_med['AutoPrecision'] / wall_med[best]:.3f}, "
          f"bf16-mixed/32-true {wall_med['bf16-mixed'] / wall_med['32-true']:.3f}")
    print(f"RATIO precision_auto_vs_best_{name} AutoPrecision throughput / best fixed precision ({best}) = "
          f"{med['AutoPrecision'] / fixed[best]:.3f} (target >= 0.95; CPU-time medians)")
    print(f"RATIO precision_bf16_vs_fp32_{name} Lightning bf16-mixed / 32-true throughput = "
          f"{med['bf16-mixed'] / med['32-true']:.3f} (for comparison)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds (under a minute)")
    args = parser.parse_args()
    steps, rounds = (150, 4) if args.quick else (300, 10)
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(f"precision_choice: 1 thread, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    rng = random.Random(0)
    for name in WORKLOADS:
        measure(name, steps, rounds, rng)


if __name__ == "__main__":
    main()
