"""Time to target: how many steps (and seconds) each optimizer strategy needs to reach a loss.

Five small CPU tasks of different families (an MLP and a CNN with BatchNorm on the digits images,
a small transformer, an LSTM with a plateau, a recommender whose parameters sit in embedding
tables), a few seeds each. Strategies:

* ``adam_1e-3``: Adam at lr 1e-3 (the tutorial default);
* ``lr_finder``: Lightning's ``Tuner.lr_find`` with Adam, its suggestion used (its sweep counted);
* ``timm_sgd``: timm-style SGD-Nesterov, lr 0.1 x batch / 256, weight decay 2e-5;
* ``prodigy``: Prodigy at its defaults (only when ``prodigyopt`` is installed);
* ``auto_rules`` / ``auto_race``: ``AutoOptimizer(mode="rules" / "race")``.

All runs use a constant learning rate (no schedule), the same initial weights and data order for
a given seed. The training loss is smoothed (EMA 0.9, bias-corrected); the per-task target is
``best + 10% x (initial - best)`` where ``best`` is the lowest smoothed loss a strategy reached on
its median seed. Each task has its own horizon (steps), long enough for the slow families.
Steps to target include every search step (LR-finder sweep, race losers, LR test); the race
winner's own race steps count as training. A run that misses the target counts as 2x the horizon.

Prints per task the median steps and seconds per strategy and their ratio to the best strategy,
then a summary score (geometric mean of the ratios; 1.0 = best everywhere).

Run: ``.venv/bin/python benchmarks/time_to_target.py [--quick] [--seeds 3] [--tasks mlp,cnn]``
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_optkit.callbacks.auto_optimizer import AutoOptimizer
from lightning_optkit.optim.registry import get_optimizer_info

warnings.filterwarnings("ignore")
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
logging.getLogger("lightning.fabric").setLevel(logging.ERROR)

BATCH = 64


# ---------------------------------------------------------------- tasks
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0, torch.tensor(d.target)


def task_mlp() -> tuple[Callable[[], nn.Module], TensorDataset, str]:
    x, y = _digits()
    def make() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128),
                             nn.ReLU(), nn.Linear(128, 10))
    return make, TensorDataset(x, y), "ce"


def task_cnn() -> tuple[Callable[[], nn.Module], TensorDataset, str]:
    x, y = _digits()
    def make() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(256, 10))
    return make, TensorDataset(x, y), "ce"


class _Transformer(nn.Module):
    def __init__(self, vocab: int = 12, length: int = 16, dim: int = 64) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(1, length, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, 4, 128, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.encoder(self.tok(x) + self.pos))).transpose(1, 2)


def task_transformer() -> tuple[Callable[[], nn.Module], TensorDataset, str]:
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 12, (4096, 16), generator=g)
    y = torch.roll(x, shifts=5, dims=1).flip(1)  # each position must find another one
    return _Transformer, TensorDataset(x, y), "ce"


class _LSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(8, 16)
        self.lstm = nn.LSTM(16, 64, batch_first=True)
        self.head = nn.Linear(64, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.emb(x))
        return self.head(out[:, -1])


def task_lstm() -> tuple[Callable[[], nn.Module], TensorDataset, str]:
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 8, (4096, 14), generator=g)
    return _LSTM, TensorDataset(x, x[:, 0].clone()), "ce"  # remember the first token: a plateau


class _Recommender(nn.Module):
    """User and item tables feeding a small MLP: most parameters sit in the tables."""

    def __init__(self, users: int = 300, items: int = 200, dim: int = 16) -> None:
        super().__init__()
        self.users, self.items = nn.Embedding(users, dim), nn.Embedding(items, dim)
        self.mlp = nn.Sequential(nn.Linear(2 * dim, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([self.users(x[:, 0]), self.items(x[:, 1])], -1)).squeeze(-1)


def task_embedding() -> tuple[Callable[[], nn.Module], TensorDataset, str]:
    g = torch.Generator().manual_seed(3)
    pu, pv = torch.randn(300, 4, generator=g), torch.randn(200, 4, generator=g)
    idx = torch.stack([torch.randint(0, 300, (20000,), generator=g),
                       torch.randint(0, 200, (20000,), generator=g)], 1)
    r = (pu[idx[:, 0]] * pv[idx[:, 1]]).sum(-1) / 2 + 0.1 * torch.randn(20000, generator=g)
    return _Recommender, TensorDataset(idx, r), "mse"


TASKS = {"mlp": task_mlp, "cnn_bn": task_cnn, "transformer": task_transformer,
         "lstm": task_lstm, "embedding": task_embedding}
HORIZONS = {"mlp": 400, "cnn_bn": 400, "transformer": 800, "lstm": 1200, "embedding": 1200}


# ---------------------------------------------------------------- the module and strategies
class TaskModule(pl.LightningModule):
    def __init__(self, net: nn.Module, loss: str, optimizer: str | None, lr: float = 1e-3) -> None:
        super().__init__()
        self.net, self.loss_kind, self.optimizer_name, self.lr = net, loss, optimizer, lr

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        out = self.net(x)
        if self.loss_kind == "ce":
            return nn.functional.cross_entropy(out, y)
        return nn.functional.mse_loss(out, y)

    def configure_optimizers(self) -> Any:
        name = self.optimizer_name
        params = self.parameters()
        if name == "adam":
            return torch.optim.Adam(params, lr=self.lr)
        if name == "timm_sgd":
            decay = [p for p in self.parameters() if p.ndim > 1]
            rest = [p for p in self.parameters() if p.ndim <= 1]
            return torch.optim.SGD([{"params": decay, "weight_decay": 2e-5},
                                    {"params": rest, "weight_decay": 0.0}],
                                   lr=0.1 * BATCH / 256, momentum=0.9, nesterov=True)
        if name == "prodigy":
            from prodigyopt import Prodigy

            return Prodigy(params, lr=1.0)
        return None  # AutoOptimizer supplies it


class _Recorder(pl.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []
        self.times: list[float] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss))
        self.times.append(time.perf_counter())


def run(task: str, strategy: str, seed: int, horizon: int) -> dict[str, Any]:
    make, data, loss = TASKS[task]()
    torch.manual_seed(seed)
    net = make()
    loader = DataLoader(data, batch_size=BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    optimizer = {"adam_1e-3": "adam", "lr_finder": "adam", "timm_sgd": "timm_sgd",
                 "prodigy": "prodigy"}.get(strategy)
    module = TaskModule(net, loss, optimizer)
    recorder = _Recorder()
    callbacks: list[pl.Callback] = [recorder]
    auto = None
    if strategy.startswith("auto_"):
        budget = max(0.05, 32 / horizon)  # at least 16 steps per loser for three candidates
        auto = AutoOptimizer(mode=strategy[5:], budget=budget, save_json=False,  # type: ignore[arg-type]
                             verbose=False)
        callbacks.append(auto)
    trainer = pl.Trainer(
        max_steps=horizon, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        num_sanity_val_steps=0, callbacks=callbacks)
    prefix: list[float] = []
    overhead = 0
    t0 = time.perf_counter()
    if strategy == "lr_finder":
        from lightning.pytorch.tuner import Tuner

        finder = Tuner(trainer).lr_find(module, train_dataloaders=loader)
        module.lr = float(finder.suggestion() or 1e-3)
        overhead = len(finder.results["lr"])
        trainer = pl.Trainer(
            max_steps=horizon, accelerator="cpu", devices=1, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            limit_val_batches=0, num_sanity_val_steps=0, callbacks=[recorder])
    trainer.fit(module, loader)
    chosen = f"adam lr={module.lr:.2g}" if strategy == "lr_finder" else ""
    search_seconds = 0.0
    if auto is not None and auto.choice is not None:
        c = auto.choice
        overhead = c.overhead_steps
        search_seconds = c.overhead_seconds
        if c.race and c.race.get("winner"):
            prefix = list(c.race["curves"][c.race["winner"]])
        mult = f" emb x{c.embedding_lr_mult:g}" if c.embedding_lr_mult != 1 else ""
        chosen = f"{c.optimizer} lr={c.lr:.2g}{mult}"
    return {"losses": prefix + recorder.losses, "offset": overhead, "prefix": len(prefix),
            "times": recorder.times, "t0": t0, "search_seconds": search_seconds, "chosen": chosen}


def smooth(values: list[float], beta: float = 0.9) -> list[float]:
    out, avg = [], 0.0
    for i, v in enumerate(values):
        v = v if math.isfinite(v) else 1e9
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def steps_to(result: dict[str, Any], target: float, horizon: int) -> tuple[float, float]:
    sm = smooth(result["losses"])
    for i, v in enumerate(sm):
        if v <= target:
            j = i - result["prefix"]
            if j < 0:
                seconds = result["search_seconds"]
            else:
                seconds = result["times"][j] - result["t0"]
            return result["offset"] + i + 1, seconds
    return 2.0 * horizon, math.inf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed (the horizons stay)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--horizon-scale", type=float, default=1.0,
                        help="multiply every task's horizon (steps) by this")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--strategies", default="")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = 1 if args.quick else args.seeds
    strategies = ["adam_1e-3", "lr_finder", "timm_sgd", "prodigy", "auto_rules", "auto_race"]
    if not get_optimizer_info("prodigy").installed:
        strategies.remove("prodigy")
    if args.strategies:
        strategies = args.strategies.split(",")
    scores: dict[str, list[float]] = {s: [] for s in strategies}
    sec_scores: dict[str, list[float]] = {s: [] for s in strategies}
    worst: dict[str, float] = {s: 0.0 for s in strategies}
    reached_all: dict[str, bool] = {s: True for s in strategies}
    for task in args.tasks.split(","):
        horizon = int(HORIZONS[task] * args.horizon_scale)
        results = {s: [] for s in strategies}
        for seed in range(seeds):
            for s in strategies:  # interleaved: strategies share the same machine load
                results[s].append(run(task, s, seed, horizon))
        # the best loss a strategy reaches on its median seed (one lucky seed does not set it)
        best_loss = min(statistics.median(min(smooth(r["losses"])) for r in rs)
                        for rs in results.values())
        init = statistics.median(smooth(r["losses"])[0] for rs in results.values() for r in rs)
        target = best_loss + 0.1 * (init - best_loss)
        table = {}
        for s, rs in results.items():
            hits = [steps_to(r, target, horizon) for r in rs]
            steps = statistics.median(h[0] for h in hits)
            secs = statistics.median(h[1] for h in hits)
            misses = sum(h[0] >= 2 * horizon for h in hits)
            table[s] = (steps, secs, misses, rs[0]["chosen"])
        best_steps = min(v[0] for v in table.values())
        finite = [v[1] for v in table.values() if math.isfinite(v[1])]
        best_secs, worst_secs = (min(finite), max(finite)) if finite else (1.0, 1.0)
        print(f"\n== {task}: target loss {target:.4f} (best {best_loss:.4f}, initial {init:.4f}), "
              f"horizon {horizon}, seeds {seeds}")
        print(f"{'strategy':<12} {'steps':>7} {'seconds':>8} {'ratio':>6} {'missed':>6}  chosen")
        for s, (steps, secs, misses, chosen) in table.items():
            ratio = steps / best_steps
            scores[s].append(ratio)
            sec_scores[s].append((secs if math.isfinite(secs) else 2 * worst_secs) / best_secs)
            worst[s] = max(worst[s], ratio)
            reached_all[s] &= misses == 0
            sec = f"{secs:8.2f}" if math.isfinite(secs) else "     inf"
            print(f"{s:<12} {steps:>7.0f} {sec} {ratio:>6.2f} {misses:>6}  {chosen}")
    print("\n== summary (geometric mean of steps / best steps per task; 1.00 = best everywhere)")
    geo = {}
    for s in strategies:
        geo[s] = math.exp(sum(math.log(r) for r in scores[s]) / len(scores[s]))
        geo_sec = math.exp(sum(math.log(r) for r in sec_scores[s]) / len(sec_scores[s]))
        print(f"{s:<12} score {geo[s]:5.2f}  (seconds {geo_sec:5.2f})  worst ratio {worst[s]:5.2f}"
              f"  reached target on every task: {'yes' if reached_all[s] else 'no'}")
    anchors = [s for s in strategies if not s.startswith("auto_")]
    for s in [s for s in strategies if s.startswith("auto_")]:
        beats = all(geo[s] < geo[a] for a in anchors)
        print(f"{s}: reaches every target: {'yes' if reached_all[s] else 'NO'}; beats every anchor "
              f"on the score: {'yes' if beats else 'NO'}; never slower than 2x the best: "
              f"{'yes' if worst[s] <= 2.0 else 'NO'}")
    best_anchor = min(anchors, key=geo.get)
    for s in [s for s in strategies if s.startswith("auto_")]:
        print(f"RATIO time_to_target_{s} steps-to-target score {geo[s]:.2f} vs best anchor {best_anchor} "
              f"{geo[best_anchor]:.2f} = {geo[s] / geo[best_anchor]:.3f} (target < 1; worst task "
              f"{worst[s]:.2f}x the best, target <= 2; every target reached: "
              f"{'yes' if reached_all[s] else 'NO'})")


if __name__ == "__main__":
    main()
