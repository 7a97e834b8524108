"""Lightning glue for the optimizer searches: real batches and real training steps.

The searches (range test, race) run inside ``fit`` at ``on_train_start``, after Lightning has set
up the strategy (DDP wrapping), the precision plugin and the train dataloader (with its
distributed sampler). Batches are drawn from a separate iterator over ``trainer.train_dataloader``
and moved to the device through the module's batch-transfer hooks; the main loop then starts its
own pass over the data (the race's batches are extra draws: data order is not restored).

Each step goes through ``strategy.training_step`` (so DDP synchronises gradients and the
precision plugin's autocast applies), with the module's ``log`` calls silenced, gradient
clipping as configured on the Trainer, and a private ``GradScaler`` when the precision plugin
scales losses. The returned loss is averaged across processes, so every rank decides alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import CombinedLoader
from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature

__all__ = ["batch_source", "make_step", "silenced_logging", "reset_metrics"]


def batch_source(trainer: pl.Trainer) -> Callable[[], Any]:
    """A function returning the next real training batch (on the device), cycling the data.

    Raises:
        ValueError: If the Trainer has no train dataloader.
    """
    loaders = trainer.train_dataloader
    if loaders is None:
        raise ValueError("the optimizer race needs a train dataloader; none is attached to fit")
    combined = CombinedLoader(loaders, "max_size_cycle")
    state: dict[str, Iterator[Any] | None] = {"it": None}

    def next_batch() -> Any:
        for _ in range(2):
            if state["it"] is None:
                state["it"] = iter(combined)
            try:
                batch = next(state["it"])[0]
                return trainer.strategy.batch_to_device(batch)
            except StopIteration:
                state["it"] = None
        raise ValueError("the train dataloader yielded no batch for the optimizer race")

    return next_batch


@contextmanager
def silenced_logging(module: pl.LightningModule) -> Iterator[None]:
    """Turn ``module.log`` / ``module.log_dict`` into no-ops inside the block."""

    def _noop(*args: Any, **kwargs: Any) -> None:
        return None

    module.__dict__["log"] = _noop
    module.__dict__["log_dict"] = _noop
    try:
        yield
    finally:
        module.__dict__.pop("log", None)
        module.__dict__.pop("log_dict", None)


def reset_metrics(module: torch.nn.Module) -> None:
    """Reset every torchmetrics ``Metric`` inside ``module`` (race batches must not count)."""
    try:
        from torchmetrics import Metric
    except ImportError:  # pragma: no cover - torchmetrics is a dependency
        return
    for sub in module.modules():
        if isinstance(sub, Metric):
            sub.reset()


def _loss_of(output: Any) -> torch.Tensor | None:
    if output is None:
        return None
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        return output.get("loss")
    raise ValueError(
        f"training_step returned {type(output).__name__}; the optimizer race needs a loss tensor "
        "or a dict with a 'loss' key"
    )


def make_step(trainer: pl.Trainer, module: pl.LightningModule) -> Callable[[Any, Any], float | None]:
    """One real training step: ``step(optimizer, batch) -> loss`` (mean over processes)."""
    strategy = trainer.strategy
    plugin = trainer.precision_plugin
    device = strategy.root_device
    scaler = None
    if getattr(plugin, "scaler", None) is not None:
        scaler = torch.amp.GradScaler(device.type)
    two_args = is_param_in_hook_signature(module.training_step, "batch_idx", min_args=2)
    clip_val = trainer.gradient_clip_val
    clip_alg = trainer.gradient_clip_algorithm or "norm"
    counter = {"i": 0}

    def step(optimizer: torch.optim.Optimizer, batch: Any) -> float | None:
        optimizer.zero_grad(set_to_none=True)
        args = (batch, counter["i"]) if two_args else (batch,)
        counter["i"] += 1
        with silenced_logging(module):
            loss = _loss_of(strategy.training_step(*args))
        if loss is None:
            return None
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if clip_val:
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            if clip_alg == "value":
                torch.nn.utils.clip_grad_value_(params, clip_val)
            else:
                torch.nn.utils.clip_grad_norm_(params, clip_val)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        value = loss.detach().float().reshape(())
        if trainer.world_size > 1:
            value = strategy.reduce(value.clone(), reduce_op="mean")
        return float(value)

    return step
