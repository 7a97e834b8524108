"""Build an optimizer from a registry name: usable on its own, with or without Lightning."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import nn

from lightning_optkit.optim.groups import check_group_value, param_groups
from lightning_optkit.optim.registry import get_optimizer_info, resolve_optimizer_class

__all__ = ["Kernel", "create_optimizer", "build_optimizer", "kernel_kwargs"]

Kernel = Literal["auto", "fused", "foreach", "for-loop"]


def kernel_kwargs(name: str, kernel: str, cls: type | None = None) -> dict[str, Any]:
    """The ``fused`` / ``foreach`` keyword arguments that select ``kernel`` for optimizer ``name``.

    ``"auto"`` returns no arguments (torch's own default). A kernel the optimizer does not offer
    falls back to the for-loop.
    """
    info = get_optimizer_info(name)
    if kernel == "auto":
        return {}
    cls = cls or resolve_optimizer_class(name)
    accepted = inspect.signature(cls.__init__).parameters
    if kernel == "fused" and info.fused and "fused" in accepted:
        return {"fused": True}
    if kernel == "foreach" and info.foreach and "foreach" in accepted:
        return {"foreach": True}
    out: dict[str, Any] = {}
    if "foreach" in accepted:
        out["foreach"] = False
    return out


def build_optimizer(
    groups: list[dict[str, Any]], name: str, lr: float, kernel: str = "auto", **overrides: Any
) -> torch.optim.Optimizer:
    """Instantiate optimizer ``name`` over prepared ``groups``.

    Args:
        groups: Parameter groups (``param_groups`` output or plain ``{"params": [...]}`` dicts).
        name: A registry name.
        lr: The base learning rate (groups with their own ``"lr"`` keep it).
        kernel: ``"auto"``, ``"fused"``, ``"foreach"`` or ``"for-loop"``.
        overrides: Hyperparameters replacing the registry defaults (``betas``, ``momentum``, ...).
    """
    info = get_optimizer_info(name)
    cls = resolve_optimizer_class(name)
    kwargs = dict(info.defaults)
    kwargs.update(overrides)
    kwargs.update(kernel_kwargs(name, kernel, cls))
    if "betas" in kwargs and isinstance(kwargs["betas"], list):
        kwargs["betas"] = tuple(kwargs["betas"])
    return cls(groups, lr=lr, **kwargs)


def create_optimizer(
    model: nn.Module | Iterable[Any],
    name: str = "adamw",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    embedding_lr_mult: float = 1.0,
    layer_decay: float | None = None,
    no_weight_decay: Iterable[str] = (),
    kernel: Kernel = "auto",
    **overrides: Any,
) -> torch.optim.Optimizer:
    """Create optimizer ``name`` for ``model`` with the package's parameter-group rules.

    Args:
        model: An ``nn.Module`` (grouped by :func:`param_groups`) or an iterable of parameters or
            group dicts (used as given, with ``weight_decay`` as the default).
        name: A registry name (see ``list_optimizers()``).
        lr: The peak learning rate; each group's ``"lr"`` is set from it (times its multiplier).
        weight_decay: Weight decay of the decayed group.
        embedding_lr_mult: Learning-rate multiplier of the embedding group.
        layer_decay: Layer-wise learning-rate decay in (0, 1], or ``None``.
        no_weight_decay: Extra parameter names kept free of weight decay.
        kernel: ``"auto"`` (torch's default), ``"fused"``, ``"foreach"`` or ``"for-loop"``.
        overrides: Other hyperparameters (``betas=(0.9, 0.95)``, ``momentum=0.8``, ...).

    Returns:
        The optimizer; every group has a ``"name"`` and an ``"lr"``.

    Raises:
        ValueError: On an unknown name, a non-positive ``lr`` or multiplier, or no trainable
            parameters.
        ImportError: If the optimizer's optional package is missing (names the pip package).

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        >>> opt = create_optimizer(model, "adamw", lr=3e-3, weight_decay=0.05)
        >>> [(g["name"], g["weight_decay"]) for g in opt.param_groups]
        [('decay', 0.05), ('no_decay', 0.0)]
    """
    get_optimizer_info(name)
    check_group_value("lr", lr)
    if isinstance(model, nn.Module):
        groups = param_groups(
            model, weight_decay=weight_decay, lr=lr, embedding_lr_mult=embedding_lr_mult,
            layer_decay=layer_decay, no_weight_decay=no_weight_decay,
        )
    else:
        items = list(model)
        if not items:
            raise ValueError("model=[] holds no parameters; pass a module or its parameters")
        if isinstance(items[0], dict):
            groups = [dict(g) for g in items]
        else:
            groups = [{"params": items, "name": "all"}]
        for i, g in enumerate(groups):
            g.setdefault("name", f"group_{i}")
            g.setdefault("weight_decay", weight_decay)
            g.setdefault("lr", lr)
    return build_optimizer(groups, name, lr=lr, kernel=kernel, weight_decay=weight_decay,
                           **overrides)
