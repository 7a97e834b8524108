"""Model inspection: the facts about a model that the family rules read.

:func:`inspect_model` walks the modules once and returns a :class:`ModelProfile`, a plain,
picklable record (no tensors), so the rules can be tested without building models.
"""

from __future__ import annotations

import functools
import inspect
import re
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
        attention_layers: Attention or transformer blocks, each counted once (torch's, classes
            named so, or modules whose ``forward`` calls ``scaled_dot_product_attention`` or
            takes a softmax over query-key scores).
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


_FUNCTIONAL_ATTENTION = re.compile(r"scaled_dot_product_attention|flex_attention|flash_attn")
_SOFTMAX = re.compile(r"softmax")
_SCORES = re.compile(r"transpose\(\s*-2\s*,\s*-1\s*\)|transpose\(\s*-1\s*,\s*-2\s*\)|\.mT\b|"
                     r"einsum\(")


@functools.lru_cache(maxsize=512)
def _forward_attends(cls: type) -> bool:
    """Whether ``cls.forward``'s own source computes attention (functional SDPA, flex attention,
    or softmax over query-key scores). Read once per class; unreadable source counts as no."""
    forward = getattr(cls, "forward", None)
    if forward is None or (getattr(forward, "__module__", None) or "").startswith("torch."):
        return False
    try:
        source = inspect.getsource(forward)
    except (OSError, TypeError, SyntaxError):
        return False
    return bool(_FUNCTIONAL_ATTENTION.search(source)) or (
        bool(_SOFTMAX.search(source)) and bool(_SCORES.search(source)))


def _is_attention(module: nn.Module) -> bool:
    """An attention layer or a block holding one: torch's, a class named so, a ``Block`` with an
    ``attn`` child, or a module whose ``forward`` computes attention itself."""
    if isinstance(module, _ATTENTION):
        return True
    name = type(module).__name__.lower()
    if "attention" in name or name.endswith("transformerblock") or (
            name == "block" and hasattr(module, "attn")):
        return True
    return _forward_attends(type(module))


def _attention_blocks(model: nn.Module) -> int:
    """Attention blocks, each counted once: a module inside a counted one is part of it (a
    nanoGPT ``Block`` and its ``CausalSelfAttention`` are one block)."""
    counted: list[str] = []
    for path, module in model.named_modules():
        if module is model or any(path.startswith(c + ".") for c in counted):
            continue
        if _is_attention(module):
            counted.append(path)
    if not counted and _is_attention(model):
        return 1  # the model itself is one attention layer, or attends in its own forward
    return len(counted)


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
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return ModelProfile(
        num_params=trainable, num_frozen=frozen, conv_layers=counts["conv"],
        batchnorm_layers=counts["bn"], other_norm_layers=counts["norm"],
        attention_layers=_attention_blocks(model), recurrent_layers=counts["rnn"],
        embedding_layers=counts["emb"], embedding_params=emb_params,
        linear_layers=counts["linear"], has_no_weight_decay=callable(getattr(model, "no_weight_decay", None)),
    )
