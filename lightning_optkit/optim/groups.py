"""Parameter groups: which parameters get weight decay, and which need their own learning rate.

Rules (the union of what the well-known recipes agree on, plus what they miss):

* no weight decay for biases, for every parameter of a normalisation layer (found by type:
  BatchNorm, GroupNorm, LayerNorm, RMSNorm, InstanceNorm, LocalResponseNorm, and any module whose
  class name ends in ``Norm``), for any other parameter with fewer than two dimensions, and for the
  names returned by the model's ``no_weight_decay()`` (timm's convention);
* embedding tables (``nn.Embedding``, ``nn.EmbeddingBag``) in their own group, with no weight
  decay and a learning-rate multiplier (embedding rows receive sparse, rare updates);
* optional layer-wise learning-rate decay: layer ``i`` of ``L`` gets ``lr * decay ** (L - 1 - i)``.

Every group carries a ``"name"`` key (``"decay"``, ``"no_decay"``, ``"embedding"``, or with
layer-wise decay ``"layer_3.decay"`` ...) so logs and schedules can address it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from torch import nn

from lightning_optkit._checks import as_float

__all__ = [
    "NORM_TYPES",
    "EMBEDDING_TYPES",
    "check_group_value",
    "is_norm_module",
    "param_groups",
    "describe_groups",
]


class _Bound(NamedTuple):
    high: float | None
    low_open: bool
    example: float


# what each grouping number allows (all are >= 0): declared once for the grouping functions here
# and for ``OptimizerSettings``
_BOUNDS = {
    "lr": _Bound(None, True, 1e-3),
    "weight_decay": _Bound(None, False, 0.01),
    "embedding_lr_mult": _Bound(None, True, 10.0),
    "layer_decay": _Bound(1.0, True, 0.75),
}


def check_group_value(arg: str, value: Any) -> float | None:
    """Return ``value`` as a float within the bounds of ``arg`` (``None`` passes unchanged).

    Args:
        arg: ``"lr"`` and ``"embedding_lr_mult"`` (> 0), ``"weight_decay"`` (>= 0) or
            ``"layer_decay"`` (in (0, 1]).
        value: The value to check.

    Raises:
        ValueError: Naming the argument, the value, the interval and an example.
    """
    if value is None:
        return None
    bound = _BOUNDS[arg]
    return as_float(arg, value, low=0.0, high=bound.high, low_open=bound.low_open,
                    example=bound.example)

NORM_TYPES: tuple[type, ...] = tuple(
    t
    for t in (
        nn.modules.batchnorm._NormBase,  # BatchNorm1/2/3d, SyncBatchNorm, InstanceNorm (affine)
        nn.GroupNorm,
        nn.LayerNorm,
        getattr(nn, "RMSNorm", None),
        nn.LocalResponseNorm,
        nn.CrossMapLRN2d,
    )
    if t is not None
)
EMBEDDING_TYPES: tuple[type, ...] = (nn.Embedding, nn.EmbeddingBag)


def is_norm_module(module: nn.Module) -> bool:
    """Whether ``module`` is a normalisation layer (by type, or a class name ending in ``Norm``)."""
    if isinstance(module, NORM_TYPES):
        return True
    name = type(module).__name__
    return name.endswith("Norm") or name.endswith("Norm1d") or name.endswith("Norm2d")


def _no_decay_names(model: nn.Module, extra: Iterable[str]) -> set[str]:
    names = set(extra)
    hook = getattr(model, "no_weight_decay", None)
    if callable(hook):
        names |= set(hook())
    return names


def _matches(param_name: str, skip: set[str]) -> bool:
    return any(param_name == s or param_name.startswith(s + ".") for s in skip)


def _layer_ids(names: list[str], num_layers: int | None) -> tuple[dict[str, int], int]:
    """Assign each parameter to a layer by its top-level child order (stem = 0, head = last)."""
    tops: list[str] = []
    for n in names:
        parts = n.split(".")
        # descend into the first container that holds numbered blocks (``blocks.3.``)
        key = parts[0]
        for i, part in enumerate(parts[:-1]):
            if part.isdigit():
                key = ".".join(parts[: i + 1])
                break
        if key not in tops:
            tops.append(key)
    ids = {}
    for n in names:
        for j, key in enumerate(tops):
            if n == key or n.startswith(key + "."):
                ids[n] = j
                break
    return ids, num_layers if num_layers is not None else len(tops)


def param_groups(
    model: nn.Module,
    weight_decay: float = 0.0,
    lr: float | None = None,
    embedding_lr_mult: float = 1.0,
    layer_decay: float | None = None,
    no_weight_decay: Iterable[str] = (),
    embedding_weight_decay: float = 0.0,
) -> list[dict[str, Any]]:
    """Split the trainable parameters of ``model`` into named optimizer groups.

    Args:
        model: The model whose ``requires_grad`` parameters are grouped (frozen ones are left out).
        weight_decay: Weight decay of the ``"decay"`` group(s).
        lr: The base (peak) learning rate; when given, every group gets an explicit ``"lr"``.
        embedding_lr_mult: Multiplier of the embedding group's learning rate, > 0.
        layer_decay: Layer-wise LR decay in (0, 1]; ``None`` disables it.
        no_weight_decay: Extra parameter names (or module-name prefixes) kept free of decay.
        embedding_weight_decay: Weight decay of the embedding group.

    Returns:
        A list of dicts with ``"params"``, ``"name"``, ``"weight_decay"``, ``"lr_mult"`` and,
        when ``lr`` is given, ``"lr"``. Empty groups are left out.

    Raises:
        ValueError: On a non-positive multiplier or learning rate, a negative weight decay, a
            layer decay outside (0, 1], or a model with no trainable parameters.
    """
    for arg, value in (("embedding_lr_mult", embedding_lr_mult), ("lr", lr),
                       ("layer_decay", layer_decay), ("weight_decay", weight_decay)):
        check_group_value(arg, value)

    skip = _no_decay_names(model, no_weight_decay)
    kind: dict[str, str] = {}
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        is_norm = is_norm_module(module)
        is_emb = isinstance(module, EMBEDDING_TYPES)
        for p_name, param in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if is_emb:
                kind[full] = "embedding"
            elif is_norm or param.ndim <= 1 or p_name == "bias" or _matches(full, skip):
                kind[full] = "no_decay"
            else:
                kind[full] = "decay"
    if not kind:
        raise ValueError(
            "the model has no trainable parameters (every parameter has requires_grad=False); "
            "unfreeze some layers before building an optimizer"
        )
    params = dict(model.named_parameters())
    names = list(kind)
    layer_of, num_layers = _layer_ids(names, None) if layer_decay is not None else ({}, 1)

    groups: dict[str, dict[str, Any]] = {}
    for n in names:
        k = kind[n]
        mult = embedding_lr_mult if k == "embedding" else 1.0
        key = k
        if layer_decay is not None:
            layer = layer_of[n]
            mult *= layer_decay ** (num_layers - 1 - layer)
            key = f"layer_{layer}.{k}"
        if key not in groups:
            wd = {"decay": weight_decay, "no_decay": 0.0, "embedding": embedding_weight_decay}[k]
            groups[key] = {"params": [], "name": key, "weight_decay": wd, "lr_mult": mult}
        groups[key]["params"].append(params[n])
    out = list(groups.values())
    if lr is not None:
        for g in out:
            g["lr"] = lr * g["lr_mult"]
    return out


def describe_groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A JSON-serialisable summary of groups: name, tensors, elements, lr, weight decay."""
    out = []
    for g in groups:
        row = {
            "name": g.get("name", "group"),
            "tensors": len(g["params"]),
            "numel": int(sum(p.numel() for p in g["params"])),
            "weight_decay": float(g.get("weight_decay", 0.0)),
            "lr_mult": float(g.get("lr_mult", 1.0)),
        }
        if "lr" in g:
            row["lr"] = float(g["lr"])
        out.append(row)
    return out
