"""The decision record: what was chosen, how, at what cost, and why.

A :class:`Choice` is plain data (JSON round-trip via ``to_dict`` / ``from_dict``): it is printed at
fit start, saved beside the logs, logged as hyperparameters and stored in checkpoints, and it is
all a resumed run needs to rebuild the identical optimizer without a new search.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from lightning_optkit.optim.factory import create_optimizer
from lightning_optkit.optim.groups import describe_groups
from lightning_optkit.optim.registry import get_optimizer_info
from lightning_optkit.optim.spec import OptimizerSpec

__all__ = ["Choice", "format_choice", "flat_hparams"]


@dataclass
class Choice(OptimizerSpec):
    """The optimizer decision: the chosen :class:`OptimizerSpec` and how it was reached.

    Attributes:
        kernel: ``"fused"``, ``"foreach"``, ``"for-loop"`` or ``"auto"`` (torch's default).
        family: The model family the rules saw.
        mode: ``"rules"`` or ``"race"`` (what actually ran).
        groups: Group summaries (name, tensors, elements, lr, weight decay).
        candidates: The candidates considered (each a dict, with its race curve when raced).
        race: The race record (rungs, eliminations, curves, loser steps) or ``None``.
        lr_test: The LR range test record or ``None``.
        kernel_times_us: Fastest measured microseconds per step of each kernel.
        overhead_steps: Steps spent on the search that did not become training progress.
        overhead_seconds: Wall-clock seconds spent on the search (kernel timing, LR test, race).
        reasons: Human-readable reasons, in order.
        model: The model profile.
        run: The run profile.
    """

    kernel: str = "auto"
    family: str = ""
    mode: str = "rules"
    groups: list[dict[str, Any]] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    race: dict[str, Any] | None = None
    lr_test: dict[str, Any] | None = None
    kernel_times_us: dict[str, float] = field(default_factory=dict)
    overhead_steps: int = 0
    overhead_seconds: float = 0.0
    reasons: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)

    def with_spec(self, spec: OptimizerSpec, kernel: str) -> Choice:
        """A deep copy that builds ``spec`` with ``kernel`` instead (the kernel timings are kept
        only while the optimizer stays the same)."""
        new = replace(self.copy(), **spec.spec_fields(), kernel=kernel)
        if spec.optimizer != self.optimizer:
            new.kernel_times_us = {}
        return new

    def copy(self) -> Choice:
        """A deep copy."""
        return Choice.from_dict(self.to_dict())

    def build(self, model: nn.Module) -> torch.optim.Optimizer:
        """Create the optimizer this choice describes over ``model``'s trainable parameters.

        The groups it made are recorded in :attr:`groups`; an optimizer with train/eval modes
        (schedule-free) is put in train mode.
        """
        optimizer = create_optimizer(
            model, self.optimizer, lr=self.lr, weight_decay=self.weight_decay,
            embedding_lr_mult=self.embedding_lr_mult, layer_decay=self.layer_decay,
            kernel=self.kernel, **self.hparams)
        self.groups = describe_groups(optimizer.param_groups)
        if get_optimizer_info(self.optimizer).needs_train_eval:
            optimizer.train()  # type: ignore[attr-defined]
        return optimizer

    def __str__(self) -> str:
        """The formatted explanation (:func:`format_choice`); ``repr`` keeps the dataclass fields."""
        return format_choice(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Choice:
        """Rebuild a choice saved by :meth:`to_dict` (unknown keys are ignored)."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def flat_hparams(choice: Choice, prefix: str = "auto_optimizer") -> dict[str, Any]:
    """Scalar hyperparameters for a logger's ``log_hyperparams``."""
    out: dict[str, Any] = {
        f"{prefix}/optimizer": choice.optimizer,
        f"{prefix}/lr": choice.lr,
        f"{prefix}/weight_decay": choice.weight_decay,
        f"{prefix}/embedding_lr_mult": choice.embedding_lr_mult,
        f"{prefix}/kernel": choice.kernel,
        f"{prefix}/family": choice.family,
        f"{prefix}/mode": choice.mode,
        f"{prefix}/overhead_steps": choice.overhead_steps,
    }
    for k, v in choice.hparams.items():
        out[f"{prefix}/{k}"] = str(v) if isinstance(v, (list, tuple)) else v
    return out


def format_choice(choice: Choice) -> str:
    """The multi-line printout shown once at fit start."""
    hp = ", ".join(f"{k}={v}" for k, v in choice.hparams.items())
    lines = [
        f"AutoOptimizer ({choice.mode}): {choice.optimizer} lr={choice.lr:.3g} "
        f"weight_decay={choice.weight_decay:g}" + (f" {hp}" if hp else "") + f" kernel={choice.kernel}",
        f"  family: {choice.family}",
    ]
    for g in choice.groups:
        lr = f" lr={g['lr']:.3g}" if "lr" in g else ""
        lines.append(f"  group {g['name']:<16} {g['tensors']:>4} tensors {g['numel']:>10,} "
                     f"params{lr} wd={g['weight_decay']:g}")
    if choice.race:
        race = choice.race
        lines.append(f"  race: {len(race['curves'])} candidates, rungs {race['rungs']}, "
                     f"winner {race['winner']}, losers' cost {race['loser_steps']} steps "
                     f"(budget {race['budget']})")
        for label, curve in race["curves"].items():
            why = race["dropped"].get(label, "survived")
            last = f"{curve[-1]:.4g}" if curve else "-"
            lines.append(f"    {label:<22} {len(curve):>4} steps, last loss {last}: {why}")
    if choice.lr_test:
        lines.append(f"  lr test: {choice.lr_test['reason']} -> {choice.lr_test['suggestion']:.3g}")
    if choice.kernel_times_us:
        times = ", ".join(f"{k} {v:.0f}us" for k, v in choice.kernel_times_us.items())
        lines.append(f"  kernels: {times}")
    lines.append(f"  overhead: {choice.overhead_steps} steps, {choice.overhead_seconds:.2f} s")
    for r in choice.reasons:
        lines.append(f"  - {r}")
    return "\n".join(lines)
