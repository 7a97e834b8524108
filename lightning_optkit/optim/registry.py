"""The optimizer registry: every supported optimizer described as data.

Each entry is a frozen :class:`OptimizerInfo` record: the name users type, the class (or the dotted
import path of an optional package, imported only when used), the default hyperparameters and the
capabilities the rest of the package reads (momentum or betas, decoupled weight decay, fused and
foreach kernels, learning-rate free, train/eval switching). Tests parametrize over the registry,
so a new entry is tested the day it is added.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from lightning_optkit._checks import as_choice

__all__ = [
    "OptimizerInfo",
    "register_optimizer",
    "get_optimizer_info",
    "list_optimizers",
    "resolve_optimizer_class",
    "is_installed",
    "MissingOptimizerPackage",
    "OPTIMIZERS",
]

Momentum = Literal["none", "momentum", "betas"]


@dataclass(frozen=True)
class OptimizerInfo:
    """One registered optimizer.

    Attributes:
        name: Registry name, lower case (``"adamw"``).
        target: Dotted import path ``"package.module.Class"``; imported lazily.
        defaults: Keyword arguments passed to the class unless overridden.
        momentum: ``"none"``, ``"momentum"`` (SGD-style) or ``"betas"`` (Adam-style).
        decoupled_weight_decay: Whether weight decay is decoupled from the gradient (AdamW-style).
        fused: Whether the class accepts ``fused=True``.
        foreach: Whether the class accepts ``foreach=True``.
        lr_free: Whether the method adapts its own step size (``lr`` is a multiplier near 1).
        needs_train_eval: Whether ``optimizer.train()`` / ``optimizer.eval()`` must be called
            around training and evaluation (Schedule-Free).
        pip_package: The package to ``pip install`` when ``target`` cannot be imported, or
            ``None`` for torch's own optimizers.
        description: One line shown by listings.
    """

    name: str
    target: str
    defaults: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    momentum: Momentum = "none"
    decoupled_weight_decay: bool = False
    fused: bool = False
    foreach: bool = False
    lr_free: bool = False
    needs_train_eval: bool = False
    pip_package: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.defaults, MappingProxyType):
            object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    @property
    def installed(self) -> bool:
        """Whether the module holding ``target`` can be imported here."""
        return is_installed(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view of the record."""
        return {
            "name": self.name,
            "target": self.target,
            "defaults": {k: list(v) if isinstance(v, tuple) else v for k, v in self.defaults.items()},
            "momentum": self.momentum,
            "decoupled_weight_decay": self.decoupled_weight_decay,
            "fused": self.fused,
            "foreach": self.foreach,
            "lr_free": self.lr_free,
            "needs_train_eval": self.needs_train_eval,
            "pip_package": self.pip_package,
        }


class MissingOptimizerPackage(ImportError, ValueError):
    """An optional optimizer's package is not installed (both an ``ImportError`` and a
    ``ValueError``, so it is caught as either)."""


_REGISTRY: dict[str, OptimizerInfo] = {}
OPTIMIZERS = MappingProxyType(_REGISTRY)  # read-only view: name -> OptimizerInfo


def register_optimizer(info: OptimizerInfo, *, overwrite: bool = False) -> OptimizerInfo:
    """Add ``info`` to the registry and return it.

    Raises:
        ValueError: If the name is taken and ``overwrite`` is false.
    """
    key = info.name.lower()
    if key in _REGISTRY and not overwrite:
        raise ValueError(
            f"optimizer name={info.name!r} is already registered; pass overwrite=True to replace it"
        )
    _REGISTRY[key] = info
    return info


def is_installed(info: OptimizerInfo) -> bool:
    """Whether the module of ``info.target`` is importable (without importing it)."""
    top = info.target.split(".")[0]
    return importlib.util.find_spec(top) is not None


def get_optimizer_info(name: str) -> OptimizerInfo:
    """Return the registry entry called ``name`` (case-insensitive).

    Raises:
        ValueError: If no optimizer has that name; the message lists the valid names.
    """
    key = str(name).lower()
    if key not in _REGISTRY:
        as_choice("name", name, sorted(_REGISTRY),
                  fix="register it with register_optimizer(OptimizerInfo(...))")
    return _REGISTRY[key]


def list_optimizers(filter: str = "*", installed_only: bool = False) -> list[str]:  # noqa: A002
    """Names of the registered optimizers matching a shell-style wildcard, sorted.

    Args:
        filter: A wildcard such as ``"adam*"`` or ``"*sgd*"``; several may be separated by commas.
        installed_only: Leave out optional optimizers whose package is not installed.

    Example:
        >>> list_optimizers("adam*")
        ['adam', 'adamax', 'adamw']
    """
    patterns = [p.strip().lower() for p in filter.split(",") if p.strip()] or ["*"]
    names = [n for n in _REGISTRY if any(fnmatch.fnmatch(n, p) for p in patterns)]
    if installed_only:
        names = [n for n in names if is_installed(_REGISTRY[n])]
    return sorted(names)


def resolve_optimizer_class(name: str) -> type:
    """Import and return the optimizer class registered as ``name``.

    Raises:
        ValueError: If the name is unknown.
        MissingOptimizerPackage: If the optional package is missing (an ``ImportError`` and a
            ``ValueError``); the message names what to pip install.
    """
    info = get_optimizer_info(name)
    module_name, _, attr = info.target.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        package = info.pip_package or module_name.split(".")[0]
        raise MissingOptimizerPackage(
            f"optimizer name={name!r} needs the optional package {package!r}, which is not "
            f"installed: pip install {package}"
        ) from err
    return getattr(module, attr)


def _torch(name: str, cls: str, kind: Momentum, decoupled: bool, fused: bool, foreach: bool,
           description: str, **defaults: Any) -> None:
    register_optimizer(OptimizerInfo(
        name=name, target=f"torch.optim.{cls}", defaults=MappingProxyType(defaults),
        momentum=kind, decoupled_weight_decay=decoupled, fused=fused, foreach=foreach,
        description=description,
    ))


_torch("sgd", "SGD", "momentum", False, True, True, "SGD with Nesterov momentum 0.9",
       momentum=0.9, nesterov=True)
_torch("momentum", "SGD", "momentum", False, True, True, "SGD with heavy-ball momentum 0.9",
       momentum=0.9)
_torch("adam", "Adam", "betas", False, True, True, "Adam (L2 weight decay)")
_torch("adamw", "AdamW", "betas", True, True, True, "AdamW (decoupled weight decay)")
_torch("nadamw", "NAdam", "betas", True, False, True, "NAdam with decoupled weight decay",
       decoupled_weight_decay=True)
_torch("nadam", "NAdam", "betas", False, False, True, "NAdam (L2 weight decay)")
_torch("radam", "RAdam", "betas", False, False, True, "Rectified Adam")
_torch("radamw", "RAdam", "betas", True, False, True, "Rectified Adam, decoupled weight decay",
       decoupled_weight_decay=True)
_torch("adamax", "Adamax", "betas", False, False, True, "Adamax (infinity norm)")
_torch("rmsprop", "RMSprop", "momentum", False, False, True, "RMSprop, alpha 0.99",
       alpha=0.99, eps=1e-8)
_torch("adagrad", "Adagrad", "none", False, True, True, "Adagrad")

register_optimizer(OptimizerInfo(
    name="prodigy", target="prodigyopt.Prodigy", defaults=MappingProxyType({}),
    momentum="betas", decoupled_weight_decay=True, lr_free=True, pip_package="prodigyopt",
    description="Prodigy: learning-rate free Adam (lr is a multiplier, 1.0)",
))
register_optimizer(OptimizerInfo(
    name="schedulefree_adamw", target="schedulefree.AdamWScheduleFree",
    defaults=MappingProxyType({}), momentum="betas", decoupled_weight_decay=True, foreach=True,
    needs_train_eval=True, pip_package="schedulefree",
    description="Schedule-Free AdamW (needs optimizer.train()/eval())",
))
register_optimizer(OptimizerInfo(
    name="schedulefree_sgd", target="schedulefree.SGDScheduleFree",
    defaults=MappingProxyType({}), momentum="momentum", foreach=True, needs_train_eval=True,
    pip_package="schedulefree", description="Schedule-Free SGD (needs optimizer.train()/eval())",
))
register_optimizer(OptimizerInfo(
    name="lion", target="lion_pytorch.Lion", defaults=MappingProxyType({}), momentum="betas",
    decoupled_weight_decay=True, pip_package="lion-pytorch",
    description="Lion (sign momentum); use ~3-10x smaller lr than AdamW",
))
