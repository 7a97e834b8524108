"""Throughput of AutoPrecision against every fixed precision, on this machine.

One MLP is trained for the same number of steps in each configuration: Lightning's ``32-true`` and
``bf16-mixed`` (``Trainer(precision=...)``), fp16 with loss scaling (``AutoPrecision("16-mixed")``;
Lightning maps ``16-mixed`` to bf16 on CPU) and ``AutoPrecision()`` (auto mode, probe included).
The configurations run interleaved (shuffled within each round) in one process. Throughput is
steps from ``on_train_start`` to ``on_train_end`` per second of this process's CPU time (one
training thread, no I/O: the cost of the steps, and not inflated when other processes share the
cores), so AutoPrecision pays for its probe steps; medians over rounds are compared. Wall-time
ratios are printed for reference.

Claims:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds (about a minute)")
    parser.add_argument("--hidden", type=int, default=512, help="width of the MLP")
    args = parser.parse_args()
    steps, rounds = (150, 4) if args.quick else (300, 10)
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    rng = random.Random(0)
    wall: dict[str, list[float]] = {c: [] for c in CONFIGS}
    cpu: dict[str, list[float]] = {c: [] for c in CONFIGS}
    chosen: list[str] = []
    for _ in range(rounds):
        order = list(CONFIGS)
        rng.shuffle(order)
        for config in order:
            rate, cpu_rate, precision = run(config, steps, features=256, hidden=args.hidden, batch=128)
            wall[config].append(rate)
            cpu[config].append(cpu_rate)
            if config == "AutoPrecision":
                chosen.append(precision)
    print(f"precision_choice: {steps} steps x {rounds} rounds, MLP 256-{args.hidden}-{args.hidden}-10, "
          f"batch 128, 1 thread, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    for config in CONFIGS:
        runs = ", ".join(f"{r:.1f}" for r in cpu[config])
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
    print(f"RATIO precision_auto_vs_best AutoPrecision throughput / best fixed precision ({best}) = "
          f"{med['AutoPrecision'] / fixed[best]:.3f} (target >= 0.95; CPU-time medians)")
    print(f"RATIO precision_bf16_vs_fp32 Lightning bf16-mixed / 32-true throughput = "
          f"{med['bf16-mixed'] / med['32-true']:.3f} (for comparison)")


if __name__ == "__main__":
    main()
