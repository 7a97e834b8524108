"""AutoPrecision against every fixed precision on real Trainer fits of GPU-sized models.

Models (synthetic data, AdamW):

* ``gpt``: GPT-like, 6 blocks x d 1024, 16 heads, sequence 512, batch 16 (causal SDPA attention).
* ``resnet``: ResNet-18-like CNN on 3 x 64 x 64 images, batch 128.
* ``gpt4096``: 4 blocks x d 4096, 32 heads, sequence 1024, batch 8 (where fp8 can pay off).

Each model runs ``32-true``, ``16-mixed``, ``bf16-mixed`` (Lightning's own plugins) and
``AutoPrecision()`` interleaved over rounds. A fit's steady step time is the median over its steps
after the first ``warmup`` (CUDA-synchronised timestamps at the step boundaries, so the benchmark,
not the profiled code, pays for the synchronisation); the whole fit's time is kept too, so the
probe's cost is counted. Claims, per model:

* ``RATIO precision_gpu_<model>_steady``: best fixed steady step time / AutoPrecision's.
* ``RATIO precision_gpu_<model>_1000``: the same over a 1,000-step run with the probe's extra time
  included (target >= 0.97 on ``gpt``).

``--smoke`` runs tiny versions on the CPU (used by the test suite so the script does not rot).

Usage: ``python benchmarks/precision_gpu.py [--models gpt,resnet,gpt4096] [--steps 60] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
import warnings
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from lightning_optkit import AutoPrecision


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.up, self.down = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(att)
        return x + self.down(F.gelu(self.up(self.norm2(x))))


class GPT(nn.Module):
    def __init__(self, vocab: int, dim: int, depth: int, heads: int, seq: int) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, dim), nn.Parameter(torch.zeros(seq, dim))
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(depth))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, vocab, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos[: idx.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


class _Res(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.b2(self.c2(F.relu(self.b1(self.c1(x))))) + self.skip(x))


class ResNet(nn.Module):
    def __init__(self, width: int = 64, classes: int = 100) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        cin = width
        for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            layers += [_Res(cin, cout, 1 if i == 0 else 2), _Res(cout, cout, 1)]
            cin = cout
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))


class _Synthetic(Dataset):
    """``length`` fixed batches' worth of samples, generated once (on the CPU)."""

    def __init__(self, kind: str, n: int, shape: tuple[int, ...], classes: int) -> None:
        g = torch.Generator().manual_seed(0)
        if kind == "tokens":
            self.x = torch.randint(0, classes, (n, *shape), generator=g)
            self.y = torch.roll(self.x, -1, dims=1)
        else:
            self.x = torch.randn(n, *shape, generator=g)
            self.y = torch.randint(0, classes, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


class Task(pl.LightningModule):
    """Wraps a network; records a synchronised timestamp at every training-batch start and the end."""

    def __init__(self, net: nn.Module, sync: bool) -> None:
        super().__init__()
        self.net, self.sync, self.marks = net, sync, []

    def _mark(self) -> None:
        if self.sync:
            torch.cuda.synchronize()
        self.marks.append(time.perf_counter())

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._mark()

    def on_train_end(self) -> None:
        self._mark()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        out = self.net(x)
        return F.cross_entropy(out.flatten(0, -2) if out.dim() > 2 else out, y.flatten())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=3e-4, fused=self.device.type == "cuda")


MODELS: dict[str, dict[str, Any]] = {
    "gpt": {"net": lambda: GPT(8192, 1024, 6, 16, 512), "data": ("tokens", (512,), 8192), "batch": 16},
    "resnet": {"net": lambda: ResNet(64, 100), "data": ("images", (3, 64, 64), 100), "batch": 128},
    "gpt4096": {"net": lambda: GPT(8192, 4096, 4, 32, 1024), "data": ("tokens", (1024,), 8192), "batch": 8},
}
SMOKE: dict[str, dict[str, Any]] = {
    "gpt": {"net": lambda: GPT(64, 32, 1, 2, 16), "data": ("tokens", (16,), 64), "batch": 4},
    "resnet": {"net": lambda: ResNet(4, 10), "data": ("images", (3, 8, 8), 10), "batch": 4},
}
CONFIGS = ("32-true", "16-mixed", "bf16-mixed", "AutoPrecision")


def fit(spec: dict[str, Any], config: str, steps: int, device: str) -> dict[str, Any]:
    """One fit of ``steps`` steps in ``config``: per-step times, whole time and the precision used."""
    torch.manual_seed(0)
    kind, shape, classes = spec["data"]
    batch = spec["batch"]
    loader = DataLoader(_Synthetic(kind, batch * 8, shape, classes), batch_size=batch, shuffle=False,
                        pin_memory=device == "cuda")
    plugin = AutoPrecision(verbose=False) if config == "AutoPrecision" else None
    extra: dict[str, Any] = {"plugins": [plugin]} if plugin is not None else {"precision": config}
    trainer = pl.Trainer(accelerator="gpu" if device == "cuda" else "cpu", devices=1, max_steps=steps,
                         max_epochs=None, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, **extra)
    task = Task(spec["net"](), sync=device == "cuda")
    trainer.fit(task, loader)
    marks = task.marks
    times = [b - a for a, b in zip(marks, marks[1:])]
    decision = getattr(plugin, "decision", None)
    return {"times": times, "total": marks[-1] - marks[0],
            "precision": plugin.precision if plugin is not None else config,
            "summary": decision.summary() if decision is not None else config}


def measure(name: str, spec: dict[str, Any], steps: int, rounds: int, warmup: int, device: str) -> dict[str, Any]:
    steady: dict[str, list[float]] = {c: [] for c in CONFIGS}
    totals: dict[str, list[float]] = {c: [] for c in CONFIGS}
    chosen: list[str] = []
    for r in range(rounds):
        order = CONFIGS if r % 2 == 0 else tuple(reversed(CONFIGS))
        for config in order:
            out = fit(spec, config, steps, device)
            steady[config].append(statistics.median(out["times"][warmup:]))
            totals[config].append(out["total"])
            if config == "AutoPrecision":
                chosen.append(out["precision"])
                summary = out["summary"]
    med = {c: statistics.median(v) for c, v in steady.items()}
    total = {c: statistics.median(v) for c, v in totals.items()}
    fixed = {c: med[c] for c in CONFIGS if c != "AutoPrecision"}
    best = min(fixed, key=fixed.__getitem__)
    # AutoPrecision's extra time over running its own steady speed from the first step (the probe,
    # its warm-ups and the slower candidates it timed), compared with the best fixed precision's
    extra = max(0.0, total["AutoPrecision"] - steps * med["AutoPrecision"])
    best_extra = max(0.0, total[best] - steps * med[best])
    run_1000 = (1000 * med[best] + best_extra) / (1000 * med["AutoPrecision"] + extra)
    print(f"{name}: {steps} steps x {rounds} rounds on {device}; steady ms/step (median):")
    for c in CONFIGS:
        print(f"  {c:>14}: {1e3 * med[c]:8.2f} ms   whole fit {total[c]:6.2f} s")
    print(f"  AutoPrecision chose {', '.join(chosen)}; extra time at start {extra:.2f} s; {summary}")
    print(f"RATIO precision_gpu_{name}_steady best fixed ({best}) / AutoPrecision steady step time = "
          f"{med[best] / med['AutoPrecision']:.3f} (target >= 0.97)")
    print(f"RATIO precision_gpu_{name}_1000 over a 1,000-step run, probe included = {run_1000:.3f} "
          f"(target >= 0.97)")
    return {"model": name, "steady_ms": {c: 1e3 * v for c, v in med.items()}, "best": best,
            "chosen": chosen, "extra_s": extra, "ratio_steady": med[best] / med["AutoPrecision"],
            "ratio_1000": run_1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gpt,resnet", help="comma-separated: gpt, resnet, gpt4096")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=25, help="steps left out of the steady median")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--smoke", action="store_true", help="tiny models on the CPU (a test of the script)")
    parser.add_argument("--quick", action="store_true", help="two rounds (as run by run_all.py)")
    args = parser.parse_args()
    if args.quick:
        args.rounds = min(args.rounds, 2)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("precision_gpu: no CUDA GPU here; nothing measured (use --smoke for a CPU dry run)")
        return
    if device == "cuda":
        print(f"precision_gpu: {torch.cuda.get_device_name()}, capability {torch.cuda.get_device_capability()}, "
              f"torch {torch.__version__}, matmul precision {torch.get_float32_matmul_precision()}")
    table = SMOKE if args.smoke else MODELS
    results = [measure(name, table[name], args.steps, args.rounds, min(args.warmup, args.steps // 2), device)
               for name in args.models.split(",") if name in table]
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
