"""Model inspection: the facts about a model that the family rules read.

:func:`inspect_model` walks the modules once and returns a :class:`ModelProfile`, a plain,
picklable record (no tensors), so the rules can be tested without building models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from lightning_optkit.optim.groups import EMBEDDING_TYPES, is_norm_module

__all__ = ["ModelProfile", "RunProfile", "inspect_model"]

_BATCHNORM = (nn.modules.batchnorm._BatchNorm,)
_CONV = (nn.modules.conv._ConvNd,)
_RECURRENT = (nn.RNNBase, nn.RNNCellBase)
_ATTENTION = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


@dataclass(frozen=True)
class ModelProfile:
    """What the model is made of.

    Attributes:
        num_params: Trainable parameter elements.
        num_frozen: Frozen (``requires_grad=False``) parameter elements.
        conv_layers: Convolution modules.
        batchnorm_layers: BatchNorm modules (any dimension, SyncBatchNorm included).
        other_norm_layers: LayerNorm, GroupNorm, RMSNorm, InstanceNorm, ... modules.
        attention_layers: Attention or transformer blocks (torch's, or classes named so).
        recurrent_layers: RNN, LSTM, GRU modules and cells.
        embedding_layers: Embedding tables.
        embedding_params: Trainable elements inside embedding tables.
        linear_layers: ``nn.Linear`` modules.
        has_no_weight_decay: Whether the model defines ``no_weight_decay()``.
    """

    num_params: int = 0
    num_frozen: int = 0
    conv_layers: int = 0
    batchnorm_layers: int = 0
    other_norm_layers: int = 0
    attention_layers: int = 0
    recurrent_layers: int = 0
    embedding_layers: int = 0
    embedding_params: int = 0
    linear_layers: int = 0
    has_no_weight_decay: bool = False

    @property
    def has_conv_bn(self) -> bool:
        """Convolutions together with BatchNorm."""
        return self.conv_layers > 0 and self.batchnorm_layers > 0

    @property
    def has_attention(self) -> bool:
        """Attention or transformer blocks."""
        return self.attention_layers > 0

    @property
    def has_recurrent(self) -> bool:
        """RNN, LSTM or GRU layers."""
        return self.recurrent_layers > 0

    @property
    def has_embeddings(self) -> bool:
        """Embedding tables."""
        return self.embedding_layers > 0

    @property
    def fine_tuning(self) -> bool:
        """Some parameters are frozen: a pretrained model being adapted."""
        return self.num_frozen > 0

    @property
    def embedding_fraction(self) -> float:
        """Share of the trainable elements held by embedding tables."""
        return self.embedding_params / self.num_params if self.num_params else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view (counts and the derived flags)."""
        out = asdict(self)
        for name in ("has_conv_bn", "has_attention", "has_recurrent", "has_embeddings",
                     "fine_tuning"):
            out[name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class RunProfile:
    """What the run looks like (read from the Trainer by the callback).

    Attributes:
        horizon: Optimizer steps planned (``trainer.estimated_stepping_batches``), or ``None``
            when unknown or infinite.
        batch_size: Samples per step on one process, or ``None`` if unknown.
        world_size: Number of processes.
        device: ``"cpu"``, ``"cuda"``, ``"mps"``, ...
        precision: The Trainer's precision string (``"32-true"``, ``"bf16-mixed"``, ...).
    """

    horizon: int | None = None
    batch_size: int | None = None
    world_size: int = 1
    device: str = "cpu"
    precision: str = "32-true"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view."""
        return asdict(self)


def _is_attention(module: nn.Module) -> bool:
    if isinstance(module, _ATTENTION):
        return True
    name = type(module).__name__.lower()
    return "attention" in name or name.endswith("transformerblock") or name == "block" and hasattr(
        module, "attn"
    )


def inspect_model(model: nn.Module) -> ModelProfile:
    """Count the building blocks of ``model`` and its trainable and frozen parameters.

    Example:
        >>> inspect_model(nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))).batchnorm_layers
        1
    """
    counts = dict(conv=0, bn=0, norm=0, attn=0, rnn=0, emb=0, linear=0)
    emb_params = 0
    for module in model.modules():
        if isinstance(module, _CONV):
            counts["conv"] += 1
        elif isinstance(module, _BATCHNORM):
            counts["bn"] += 1
        elif is_norm_module(module):
            counts["norm"] += 1
        elif isinstance(module, _RECURRENT):
            counts["rnn"] += 1
        elif isinstance(module, EMBEDDING_TYPES):
            counts["emb"] += 1
            emb_params += sum(p.numel() for p in module.parameters(recurse=False) if p.requires_grad)
        elif isinstance(module, nn.Linear):
            counts["linear"] += 1
        if _is_attention(module):
            counts["attn"] += 1
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return ModelProfile(
        num_params=trainable, num_frozen=frozen, conv_layers=counts["conv"],
        batchnorm_layers=counts["bn"], other_norm_layers=counts["norm"],
        attention_layers=counts["attn"], recurrent_layers=counts["rnn"],
        embedding_layers=counts["emb"], embedding_params=emb_params,
        linear_layers=counts["linear"], has_no_weight_decay=callable(getattr(model, "no_weight_decay", None)),
    )
