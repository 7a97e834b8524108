"""The searches themselves: range test, race and kernel timing, on plain torch objects.

Nothing here knows about the Trainer. The caller passes closures:

* ``step(optimizer, batch) -> float | None``: one training step on ``batch`` (zero grads, forward,
  backward, optimizer step) returning the loss, already reduced across processes when
  distributed, so every process takes the same decisions; ``None`` when the batch was skipped;
* ``next_batch() -> batch``: the next real training batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lightning_optkit.optim.factory import build_optimizer
from lightning_optkit.optim.lr_test import LRTestResult, suggest_lr, sweep_lrs
from lightning_optkit.optim.race import RaceBook, RacePlan
from lightning_optkit.optim.registry import get_optimizer_info

__all__ = [
    "MEASURE_LIMIT",
    "StepFn",
    "snapshot",
    "restore",
    "run_lr_test",
    "run_race",
    "measure_kernels",
    "choose_kernels",
]

MEASURE_LIMIT = 5_000_000  # above this many parameters the kernel is chosen without timing

StepFn = Callable[[torch.optim.Optimizer, Any], "float | None"]


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the model's parameters and buffers."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def restore(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` back into ``model`` in place (parameter objects are kept)."""
    with torch.no_grad():
        model.load_state_dict(state)


def run_lr_test(
    model: nn.Module,
    build: Callable[[float], torch.optim.Optimizer],
    step: StepFn,
    batches: list[Any],
    prior: float,
    span: float = 100.0,
    clamp: float = 10.0,
) -> tuple[LRTestResult, int]:
    """Sweep the LR over ``batches`` (one step each) and restore the model afterwards.

    Returns:
        The result and the number of steps spent.
    """
    start = snapshot(model)
    lrs = sweep_lrs(prior, len(batches), span)
    optimizer = build(lrs[0])
    losses: list[float] = []
    best = math.inf
    try:
        for lr, batch in zip(lrs, batches):
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_mult", 1.0)
            loss = step(optimizer, batch)
            if loss is None:
                continue
            losses.append(loss)
            best = min(best, loss)
            if not math.isfinite(loss) or loss > 8 * best:
                break
    finally:
        restore(model, start)
    return suggest_lr(lrs[: len(losses)], losses, prior, clamp=clamp), len(losses)


def run_race(
    model: nn.Module,
    labels: list[str],
    builders: dict[str, Callable[[], torch.optim.Optimizer]],
    step: StepFn,
    next_batch: Callable[[], Any],
    plan: RacePlan,
    window: int = 16,
) -> tuple[RaceBook, str | None, torch.optim.Optimizer | None]:
    """Successive halving of the candidates ``labels`` (first = the prior's choice).

    Every candidate starts from the model's current weights and sees the same batches; after the
    race the model holds the winner's weights and the winner's optimizer (with its state) is
    returned, so its progress is kept. If every candidate diverged the model is restored to its
    initial weights and ``(book, None, None)`` is returned.
    """
    book = RaceBook(labels=list(labels), plan=plan, window=window)
    start = snapshot(model)
    states: dict[str, dict[str, torch.Tensor]] = {}
    optimizers = {label: builders[label]() for label in labels}
    done = 0
    for rung_end in plan.rungs:
        batches = [next_batch() for _ in range(rung_end - done)]
        for label in list(book.alive):
            restore(model, states.get(label, start))
            for batch in batches:
                loss = step(optimizers[label], batch)
                if loss is not None and not book.record(label, loss):
                    break
            if label in book.alive:
                states[label] = snapshot(model)
            else:
                states.pop(label, None)
                optimizers[label] = None  # type: ignore[assignment]
        book.check_divergence()
        book.rung(width=min(window, rung_end - done))
        done = rung_end
        if len(book.alive) <= 1:
            break
    winner = book.winner(width=min(window, done) if done else None)
    if winner is None:
        restore(model, start)
        return book, None, None
    restore(model, states[winner])
    return book, winner, optimizers[winner]


def measure_kernels(
    params: list[torch.Tensor],
    name: str,
    lr: float,
    hparams: dict[str, Any] | None = None,
    steps: int = 7,
) -> dict[str, float]:
    """Fastest seconds per ``optimizer.step()`` of each kernel the optimizer offers.

    The timing runs on clones of ``params`` (same shapes, dtypes and device) with fixed random
    gradients, so the real weights are untouched. Kernels that fail to build or step are left
    out. The kernels are timed interleaved, round by round, so drifting load hits all alike,
    and the fastest round of each is kept (other processes only ever add time).
    """
    info = get_optimizer_info(name)
    kernels = ["for-loop"] + (["foreach"] if info.foreach else []) + (["fused"] if info.fused else [])
    clones = [p.detach().clone().requires_grad_(True) for p in params]
    generator = torch.Generator(device="cpu").manual_seed(0)
    for c in clones:
        c.grad = (torch.randn(c.shape, generator=generator) * 1e-3).to(c.device, c.dtype)
    cuda = any(c.is_cuda for c in clones)
    opts: dict[str, torch.optim.Optimizer] = {}
    for kernel in kernels:
        try:
            opt = build_optimizer([{"params": clones}], name, lr=lr, kernel=kernel, **(hparams or {}))
            opt.step()
            opts[kernel] = opt
        except (RuntimeError, TypeError, ValueError):
            continue
    times: dict[str, list[float]] = {k: [] for k in opts}
    for _ in range(steps):
        for kernel, opt in opts.items():
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            opt.step()
            if cuda:
                torch.cuda.synchronize()
            times[kernel].append(time.perf_counter() - t0)
    return {k: min(v) for k, v in times.items()}


def choose_kernels(
    params: list[torch.Tensor],
    names: list[str],
    limit: int = MEASURE_LIMIT,
    timed: bool = True,
) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
    """The fastest kernel of each optimizer in ``names`` for these parameters.

    Up to ``limit`` elements the kernels are timed (:func:`measure_kernels`); above it, or when
    ``timed`` is false (a deterministic run: a timing must not decide how two identical runs
    train), each optimizer gets the kernel the rule names: fused, then foreach, then the
    for-loop, the first it offers.

    Returns:
        ``(kernels, times)``: optimizer name -> kernel, and optimizer name -> seconds per step of
        each timed kernel (empty when nothing was timed).
    """
    large = not timed or sum(p.numel() for p in params) > limit
    kernels: dict[str, str] = {}
    times: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(names):
        info = get_optimizer_info(name)
        if large:
            kernels[name] = "fused" if info.fused else "foreach" if info.foreach else "for-loop"
            continue
        times[name] = measure_kernels(params, name, 1e-3, {})
        kernels[name] = min(times[name], key=times[name].__getitem__) if times[name] else "for-loop"
    return kernels, times
