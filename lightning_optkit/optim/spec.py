"""What builds one optimizer: the fields a rule proposes (:class:`~.rules.Candidate`) and a
decision keeps (:class:`~.choice.Choice`), declared once here."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

__all__ = ["OptimizerSpec"]

_Spec = TypeVar("_Spec", bound="OptimizerSpec")


@dataclass
class OptimizerSpec:
    """One optimizer configuration: name, learning rate, weight decay and group multipliers.

    Attributes:
        optimizer: Registry name.
        lr: Peak learning rate of the base groups (the multiplier for LR-free methods; each
            group's ``"lr"`` is this x its multiplier).
        weight_decay: Weight decay of the decayed group.
        hparams: Other constructor arguments (``betas``, ``momentum`` ...), JSON types only.
        embedding_lr_mult: LR multiplier of the embedding group.
        layer_decay: Layer-wise LR decay, or ``None``.
    """

    optimizer: str
    lr: float
    weight_decay: float = 0.0
    hparams: dict[str, Any] = field(default_factory=dict)
    embedding_lr_mult: float = 1.0
    layer_decay: float | None = None

    @property
    def label(self) -> str:
        """Short unique label such as ``"adamw@3e-03"`` (``"adamw@3e-03/emb10"`` with a table
        multiplier)."""
        mult = f"/emb{self.embedding_lr_mult:g}" if self.embedding_lr_mult != 1.0 else ""
        return f"{self.optimizer}@{self.lr:.0e}{mult}"

    def spec_fields(self) -> dict[str, Any]:
        """The :class:`OptimizerSpec` fields alone, as keyword arguments (``hparams`` copied)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(OptimizerSpec)}

    def with_lr(self: _Spec, lr: float) -> _Spec:
        """A copy with another learning rate."""
        return replace(self, lr=float(lr))
