"""Time to target: optimizer steps each strategy needs to reach a validation loss (CPU, synthetic data).

Tasks of kinds the optimizer rules were not written for (synthetic data or sklearn's bundled
digits, nothing downloaded):

* ``conv_ae``: a convolutional autoencoder with BatchNorm on the digits images, MSE loss;
* ``ctr``: a wide-and-deep click-through model (large embedding tables, Zipf-distributed ids),
  binary cross-entropy;
* ``gru_lm``: a GRU language model on sequences of a sparse Markov chain, next-token loss;
* ``sdpa``: a small transformer whose blocks call ``F.scaled_dot_product_attention`` directly (no
  attention submodule) and learn to sort a sequence;
* ``finetune``: a CNN pretrained on the digits 0-4, then trained on 5-9 with a new head (every
  weight trainable);
* held out (written after the rules were changed, reported separately): ``resmlp`` (residual MLP
  regression on Friedman #1 data) and ``tabular`` (an MLP on a synthetic tabular classification).

Strategies (every schedule is ``WarmupDecay(warmup="2%", decay="cosine")``, as ``OptKit`` uses):

* ``auto``: ``AutoOptimizer()`` with its defaults; every search step (race losers, LR test) is
  counted, the winner's race steps count as training;
* ``prodigy``: Prodigy (``prodigyopt``) lr=1.0, weight decay 0.01, ``safeguard_warmup=True``;
* ``adamw``: AdamW lr 3e-3 (weight decay 0.01);
* ``adam``: Adam lr 1e-3, constant (the tutorial default).

The validation loss is measured every ``EVAL_EVERY`` steps on held-out data. Target per task:
``best + 10% x (initial - best)`` where ``best`` is the lowest validation loss a strategy reaches
(the median over seeds) and ``initial`` the loss of the initial weights. Steps to target: the first
evaluation at or below it (the mean over seeds; a task counts as missed when a seed misses). The
score is an AlgoPerf-style performance profile: the share of tasks a strategy solves within
``tau`` x the best strategy's steps, averaged over ``tau`` from 1 to 4 (1.0 = best everywhere).

Run: ``python benchmarks/time_to_target.py [--quick] [--seeds 2] [--tasks conv_ae,ctr]``
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
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_optkit import AutoOptimizer, WarmupDecay
from lightning_optkit.optim.registry import get_optimizer_info

warnings.filterwarnings("ignore")
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
logging.getLogger("lightning.fabric").setLevel(logging.ERROR)

EVAL_EVERY = 5
TAUS = [1.0 + 3.0 * i / 300 for i in range(301)]
Task = tuple[Callable[[], nn.Module], TensorDataset, TensorDataset, str, int]


# ---------------------------------------------------------------- data helpers
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0, torch.tensor(d.target)


def _split(*tensors: torch.Tensor, val: int, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    perm = torch.randperm(len(tensors[0]), generator=torch.Generator().manual_seed(seed))
    return (TensorDataset(*(t[perm[val:]] for t in tensors)),
            TensorDataset(*(t[perm[:val]] for t in tensors)))


# ---------------------------------------------------------------- tasks
def task_conv_ae() -> Task:
    x, _ = _digits()
    train, val = _split(x, x, val=400)

    def make() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 8, 1),  # the bottleneck: 8 channels at 4x4
            nn.ConvTranspose2d(8, 16, 4, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 1, 3, padding=1))
    return make, train, val, "mse", 300


class _WideDeep(nn.Module):
    def __init__(self, sizes: list[int], dim: int = 16) -> None:
        super().__init__()
        self.deep = nn.ModuleList(nn.Embedding(n, dim) for n in sizes)
        self.wide = nn.ModuleList(nn.Embedding(n, 1) for n in sizes)
        self.mlp = nn.Sequential(nn.Linear(dim * len(sizes), 64), nn.ReLU(), nn.Linear(64, 32),
                                 nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep = torch.cat([e(x[:, i]) for i, e in enumerate(self.deep)], -1)
        wide = sum(e(x[:, i]) for i, e in enumerate(self.wide))
        return (self.mlp(deep) + wide).squeeze(-1)


def task_ctr() -> Task:
    g = torch.Generator().manual_seed(3)
    sizes = [3000, 2000, 1000, 500, 100]
    n = 40000
    cols, hidden = [], []
    for size in sizes:
        weights = 1.0 / torch.arange(1, size + 1, dtype=torch.float32) ** 0.8  # Zipf-like ids
        cols.append(torch.multinomial(weights, n, replacement=True, generator=g))
        hidden.append((torch.randn(size, 4, generator=g), torch.randn(size, generator=g)))
    x = torch.stack(cols, 1)
    logit = sum(hidden[i][1][x[:, i]] * 0.5 for i in range(len(sizes)))
    for a, b in ((0, 1), (0, 2), (1, 3), (2, 4)):
        logit = logit + (hidden[a][0][x[:, a]] * hidden[b][0][x[:, b]]).sum(-1) * 0.5
    y = torch.bernoulli(torch.sigmoid(logit - 1.0), generator=g)
    train, val = _split(x, y, val=2000)
    return (lambda: _WideDeep(sizes)), train, val, "bce", 400


class _GRULM(nn.Module):
    def __init__(self, vocab: int = 24, dim: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.gru = nn.GRU(dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.emb(x))
        return self.head(out).transpose(1, 2)


def task_gru_lm() -> Task:
    g = torch.Generator().manual_seed(4)
    vocab, length, n = 24, 21, 5000
    # an order-2 Markov chain with few successors per context: learnable, not trivial
    nxt = torch.randint(0, vocab, (vocab, vocab, 3), generator=g)
    seq = torch.zeros(n, length, dtype=torch.long)
    seq[:, :2] = torch.randint(0, vocab, (n, 2), generator=g)
    for t in range(2, length):
        pick = torch.randint(0, 3, (n,), generator=g)
        seq[:, t] = nxt[seq[:, t - 2], seq[:, t - 1], pick]
    train, val = _split(seq[:, :-1], seq[:, 1:], val=500)
    return _GRULM, train, val, "ce", 250


class _Block(nn.Module):
    """Pre-norm transformer block: attention through ``F.scaled_dot_product_attention``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        att = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class _SortNet(nn.Module):
    def __init__(self, vocab: int = 16, length: int = 10, dim: int = 64, layers: int = 2) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(1, length, dim) * 0.02)
        self.blocks = nn.Sequential(*(_Block(dim, 4) for _ in range(layers)))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.blocks(self.tok(x) + self.pos))).transpose(1, 2)


def task_sdpa() -> Task:
    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, 16, (8000, 10), generator=g)
    train, val = _split(x, x.sort(1).values, val=400)
    return _SortNet, train, val, "ce", 300


def _small_cnn(classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, classes))


_PRETRAINED: dict[int, dict[str, torch.Tensor]] = {}


def _pretrained(seed: int) -> dict[str, torch.Tensor]:
    """Weights trained with Adam on the digits 0-4 (not counted: someone else's pretraining)."""
    if seed not in _PRETRAINED:
        x, y = _digits()
        keep = y < 5
        torch.manual_seed(100 + seed)
        net = _small_cnn(5)
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        data = DataLoader(TensorDataset(x[keep], y[keep]), batch_size=64, shuffle=True)
        for _ in range(4):
            for xb, yb in data:
                opt.zero_grad()
                F.cross_entropy(net(xb), yb).backward()
                opt.step()
        _PRETRAINED[seed] = {k: v.clone() for k, v in net.state_dict().items()}
    return _PRETRAINED[seed]


def task_finetune() -> Task:
    x, y = _digits()
    keep = y >= 5
    train, val = _split(x[keep], y[keep] - 5, val=300)

    def make() -> nn.Module:
        net = _small_cnn(5)
        state = {k: v for k, v in _pretrained(SEED[0]).items() if not k.startswith("8.")}
        net.load_state_dict(state, strict=False)  # a new head on pretrained features
        return net
    return make, train, val, "ce", 200


class _ResMLP(nn.Module):
    """Pre-norm residual MLP for regression."""

    def __init__(self, features: int = 10, dim: int = 64, blocks: int = 3) -> None:
        super().__init__()
        self.inp = nn.Linear(features, dim)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(),
                          nn.Linear(2 * dim, dim)) for _ in range(blocks))
        self.out = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h).squeeze(-1)


def task_resmlp() -> Task:
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=5000, n_features=10, noise=0.3, random_state=6)
    x = torch.tensor(x, dtype=torch.float32)
    y = torch.tensor((y - y.mean()) / y.std(), dtype=torch.float32)
    train, val = _split(x, y, val=500)
    return _ResMLP, train, val, "mse", 300


def task_tabular() -> Task:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=6000, n_features=30, n_informative=12, n_redundant=6,
                               n_classes=5, n_clusters_per_class=2, class_sep=1.2,
                               random_state=7)
    x = torch.tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    train, val = _split(x, torch.tensor(y), val=600)

    def make() -> nn.Module:
        return nn.Sequential(nn.Linear(30, 128), nn.BatchNorm1d(128), nn.ReLU(),
                             nn.Linear(128, 128), nn.BatchNorm1d(128), nn.ReLU(),
                             nn.Linear(128, 5))
    return make, train, val, "ce", 300


SEED = [0]  # the seed of the current run (the fine-tuning task's pretraining depends on it)

TASKS: dict[str, Callable[[], Task]] = {
    "conv_ae": task_conv_ae, "ctr": task_ctr, "gru_lm": task_gru_lm, "sdpa": task_sdpa,
    "finetune": task_finetune, "resmlp": task_resmlp, "tabular": task_tabular,
}
HELD_OUT = ["resmlp", "tabular"]  # written after the rules were changed


# ---------------------------------------------------------------- the modules and strategies
def _loss(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if kind == "ce":
        return F.cross_entropy(out, y)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(out, y)
    return F.mse_loss(out, y)


class TaskModule(pl.LightningModule):
    """The task's network and loss; no ``configure_optimizers``: AutoOptimizer supplies it."""

    def __init__(self, net: nn.Module, loss: str) -> None:
        super().__init__()
        self.net, self.loss_kind = net, loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return _loss(self.loss_kind, self.net(x), y)


class AnchorModule(TaskModule):
    """A task module with a fixed optimizer recipe."""

    def __init__(self, net: nn.Module, loss: str, recipe: str) -> None:
        super().__init__(net, loss)
        self.recipe = recipe

    def configure_optimizers(self) -> Any:
        params = self.parameters()
        if self.recipe == "prodigy":
            from prodigyopt import Prodigy

            return Prodigy(params, lr=1.0, weight_decay=0.01, safeguard_warmup=True)
        if self.recipe == "adamw":
            return torch.optim.AdamW(params, lr=3e-3, weight_decay=0.01)
        return torch.optim.Adam(params, lr=1e-3)


class _Validator(pl.Callback):
    """Validation loss every ``EVAL_EVERY`` training steps (model and optimizers in eval mode)."""

    def __init__(self, val: TensorDataset, loss: str) -> None:
        self.x, self.y = val.tensors
        self.loss = loss
        self.steps = 0
        self.curve: list[tuple[int, float]] = []

    def evaluate(self, net: nn.Module, optimizers: list[Any]) -> float:
        was = net.training
        net.eval()
        for opt in optimizers:
            if callable(getattr(opt, "eval", None)):
                opt.eval()
        with torch.no_grad():
            value = float(_loss(self.loss, net(self.x), self.y))
        for opt in optimizers:
            if callable(getattr(opt, "train", None)):
                opt.train()
        net.train(was)
        return value if math.isfinite(value) else 1e9

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.steps += 1
        if self.steps % EVAL_EVERY == 0:
            self.curve.append((self.steps, self.evaluate(pl_module.net, trainer.optimizers)))


def run(task: str, strategy: str, seed: int) -> dict[str, Any]:
    SEED[0] = seed
    make, train, val, loss, horizon = TASKS[task]()
    torch.manual_seed(seed)
    net = make()
    loader = DataLoader(train, batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    validator = _Validator(val, loss)
    initial = validator.evaluate(net, [])
    auto = None
    callbacks: list[pl.Callback] = [validator]
    if strategy == "auto":
        module: TaskModule = TaskModule(net, loss)
        auto = AutoOptimizer(save_json=False, verbose=False)
        callbacks.insert(0, auto)
    else:
        module = AnchorModule(net, loss, strategy)
    if strategy != "adam":
        callbacks.append(WarmupDecay(warmup="2%", decay="cosine", verbose=False, log_lr=False))
    trainer = pl.Trainer(
        max_steps=horizon, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        num_sanity_val_steps=0, callbacks=callbacks, deterministic=True)
    t0 = time.perf_counter()
    trainer.fit(module, loader)
    seconds = time.perf_counter() - t0
    offset, chosen = 0, ""
    if auto is not None and auto.choice is not None:
        c = auto.choice
        offset = c.overhead_steps  # losers' and LR-test steps
        if c.race and c.race.get("winner"):
            offset += len(c.race["curves"][c.race["winner"]])  # the winner's race steps
        mult = f" emb x{c.embedding_lr_mult:g}" if c.embedding_lr_mult != 1 else ""
        chosen = f"{c.optimizer} lr={c.lr:.2g}{mult} ({c.mode})"
    return {"curve": [(s + offset, v) for s, v in validator.curve], "initial": initial,
            "horizon": horizon, "seconds": seconds, "chosen": chosen}


def steps_to(result: dict[str, Any], target: float) -> float:
    for step, value in result["curve"]:
        if value <= target:
            return float(step)
    return math.inf


def profile_score(ratios: list[float]) -> float:
    """Share of tasks solved within tau x the best, averaged over tau in [1, 4]."""
    return sum(sum(r <= t + 1e-9 for r in ratios) / len(ratios) for t in TAUS) / len(TAUS)


def evaluate_tasks(tasks: list[str], strategies: list[str], seeds: int) -> dict[str, list[float]]:
    """Run every task and print its table; returns each strategy's step ratio per task."""
    ratios: dict[str, list[float]] = {s: [] for s in strategies}
    for task in tasks:
        results: dict[str, list[dict[str, Any]]] = {s: [] for s in strategies}
        for seed in range(seeds):
            for s in strategies:
                results[s].append(run(task, s, seed))
        best = min(statistics.median(min(v for _, v in r["curve"]) for r in rs)
                   for rs in results.values())
        initial = statistics.median(r["initial"] for rs in results.values() for r in rs)
        target = best + 0.1 * (initial - best)
        table = {}
        for s, rs in results.items():
            hits = [steps_to(r, target) for r in rs]
            table[s] = (sum(hits) / len(hits), sum(math.isinf(h) for h in hits),
                        statistics.mean(r["seconds"] for r in rs), rs[0]["chosen"])
        best_steps = min(v[0] for v in table.values())
        print(f"\n== {task}: target val loss {target:.4f} (best {best:.4f}, initial {initial:.4f}),"
              f" horizon {results[strategies[0]][0]['horizon']}, seeds {seeds}", flush=True)
        print(f"{'strategy':<8} {'steps':>6} {'ratio':>6} {'missed':>6} {'seconds':>7}  chosen")
        for s, (steps, misses, secs, chosen) in table.items():
            ratio = steps / best_steps
            ratios[s].append(ratio)
            shown = f"{steps:6.0f}" if math.isfinite(steps) else "     -"
            print(f"{s:<8} {shown} {ratio:>6.2f} {misses:>6} {secs:>7.1f}  {chosen}", flush=True)
    return ratios


def summarise(title: str, ratios: dict[str, list[float]]) -> dict[str, float]:
    print(f"\n== {title}: performance-profile score (1.00 = best on every task)")
    scores = {}
    for s, rs in ratios.items():
        scores[s] = profile_score(rs)
        reached = sum(math.isfinite(r) for r in rs)
        worst = max(rs)
        print(f"{s:<8} score {scores[s]:.2f}  reached {reached} of {len(rs)}  worst ratio "
              f"{worst if math.isfinite(worst) else math.inf:.2f}")
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed instead of 2")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--tasks", default="", help="comma-separated task names (default: all)")
    parser.add_argument("--strategies", default="auto,prodigy,adamw,adam")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = 1 if args.quick else args.seeds
    strategies = args.strategies.split(",")
    if "prodigy" in strategies and not get_optimizer_info("prodigy").installed:
        strategies.remove("prodigy")
        print("prodigy: prodigyopt is not installed (pip install prodigyopt); anchor left out")
    names = args.tasks.split(",") if args.tasks else list(TASKS)
    tuned = [t for t in names if t not in HELD_OUT]
    held = [t for t in names if t in HELD_OUT]
    ratios = evaluate_tasks(tuned, strategies, seeds) if tuned else {s: [] for s in strategies}
    held_ratios = evaluate_tasks(held, strategies, seeds) if held else {s: [] for s in strategies}
    if tuned:
        summarise("tasks seen while the rules were changed", ratios)
    if held:
        summarise("held-out tasks (written after the change)", held_ratios)
    every = {s: ratios[s] + held_ratios[s] for s in strategies}
    scores = summarise("all tasks", every)
    if "auto" not in strategies:
        return
    anchors = [s for s in strategies if s != "auto"]
    best_anchor = max(anchors, key=scores.get) if anchors else "auto"
    worst = max(every["auto"])
    reached = all(math.isfinite(r) for r in every["auto"])
    print(f"RATIO time_to_target_auto profile score {scores['auto']:.2f} vs best anchor "
          f"{best_anchor} {scores[best_anchor]:.2f} = "
          f"{scores['auto'] / max(scores[best_anchor], 1e-9):.3f} (target > 1; worst task "
          f"{worst:.2f}x the best, target <= 2; every target reached: {'yes' if reached else 'NO'})")


if __name__ == "__main__":
    main()
