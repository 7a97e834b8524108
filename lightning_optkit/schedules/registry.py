"""Name -> shape registries for decay shapes (per convention) and warm-up shapes.

A decay shape is one small module-level function ``fn(step, plan) -> float`` registered with
:func:`register_shape`; a warm-up shape is ``fn(q, start) -> float`` registered with
:func:`register_warmup`. The registries are data: the tests are parametrized over them, so every
entry is tested the day it is added.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from lightning_optkit._checks import fail

__all__ = [
    "COMPATS",
    "Context",
    "Plan",
    "ShapeSpec",
    "WarmupSpec",
    "get_shape",
    "get_warmup",
    "horizonless_shapes",
    "list_shapes",
    "list_warmups",
    "register_shape",
    "register_warmup",
    "shape_table",
    "warmup_table",
]

COMPATS = ("default", "hf", "timm")


class Context(NamedTuple):
    """The common arguments a shape's option resolver may need."""

    warmup_steps: int
    total_steps: int | None
    min_lr_ratio: float
    warmup_start: float | None
    warmup: str


class Plan(Protocol):
    """What a shape function reads (a :class:`~lightning_optkit.schedules.Schedule` provides it).

    Attributes:
        warmup_steps: warm-up length ``W`` in optimizer steps.
        total_steps: horizon ``T`` (``None`` for shapes that need none).
        floor: ``min_lr_ratio``.
        start: the effective warm-up start factor (default convention).
        values: the shape's options with defaults and derived values filled in.
    """

    @property
    def warmup_steps(self) -> int: ...

    @property
    def total_steps(self) -> int | None: ...

    @property
    def floor(self) -> float: ...

    @property
    def start(self) -> float: ...

    @property
    def values(self) -> Mapping[str, Any]: ...


ShapeFn = Callable[[int, Plan], float]
Resolver = Callable[[dict[str, Any], Context], dict[str, Any]]


@dataclass(frozen=True)
class ShapeSpec:
    """One registered decay shape.

    Attributes:
        name: the name passed as ``decay=``.
        compat: the convention it belongs to (``"default"``, ``"hf"`` or ``"timm"``).
        fn: ``fn(step, plan) -> float``. Default convention: the decay factor in [0, 1] for
            ``step >= warmup_steps`` (warm-up, floor and horizon are applied around it). Other
            conventions (``own_warmup``): the whole multiplier at every step.
        defaults: option name -> default value (``None`` = unset / derived).
        resolve: validates the options and fills in derived values.
        requires_horizon: whether ``total_steps`` is needed.
        horizon_unless: an option that, when set, removes the need for ``total_steps``.
        monotone: warm-up non-decreasing then decay non-increasing (property-tested).
        own_warmup: the function computes the warm-up itself (compatibility modes).
        example: options giving a valid schedule (used by the registry-driven tests).
        summary: one line for tables and errors.
    """

    name: str
    compat: str
    fn: ShapeFn
    defaults: tuple[tuple[str, Any], ...]
    resolve: Resolver | None
    requires_horizon: bool
    horizon_unless: str | None
    monotone: bool
    own_warmup: bool
    example: tuple[tuple[str, Any], ...]
    summary: str

    @property
    def option_names(self) -> list[str]:
        """The option names this shape accepts."""
        return [key for key, _ in self.defaults]


@dataclass(frozen=True)
class WarmupSpec:
    """One registered warm-up shape.

    Attributes:
        name: the name passed as ``warmup=``.
        fn: ``fn(q, start) -> float`` with ``q = step / warmup_steps`` in [0, 1): ``start`` at
            ``q = 0``, non-decreasing, approaching 1 as ``q -> 1``.
        positive_start: whether the shape needs ``start > 0``.
        summary: one line for tables and errors.
    """

    name: str
    fn: Callable[[float, float], float]
    positive_start: bool
    summary: str


_SHAPES: dict[tuple[str, str], ShapeSpec] = {}
_WARMUPS: dict[str, WarmupSpec] = {}


def _first_line(fn: Callable[..., Any]) -> str:
    return (fn.__doc__ or fn.__name__).strip().splitlines()[0]


def register_shape(
    name: str,
    *,
    compat: str = "default",
    options: Mapping[str, Any] | None = None,
    resolve: Resolver | None = None,
    requires_horizon: bool = True,
    horizon_unless: str | None = None,
    monotone: bool = True,
    own_warmup: bool = False,
    example: Mapping[str, Any] | None = None,
) -> Callable[[ShapeFn], ShapeFn]:
    """Register a decay shape under ``name`` for convention ``compat`` (a decorator).

    Args:
        name: the name users pass as ``decay=``.
        compat: the convention: ``"default"``, ``"hf"`` or ``"timm"``.
        options: option name -> default.
        resolve: validates the options and fills in derived values.
        requires_horizon: whether ``total_steps`` is needed.
        horizon_unless: an option that, when set, removes the need for ``total_steps``.
        monotone: warm-up non-decreasing then decay non-increasing.
        own_warmup: the function computes the warm-up itself.
        example: options giving a valid schedule, for the registry-driven tests.

    Raises:
        ValueError: if the name is already registered for that convention.
    """
    if compat not in COMPATS:
        raise fail("compat", compat, f"expected one of {list(COMPATS)}", "register under a known convention")

    def decorate(fn: ShapeFn) -> ShapeFn:
        if (compat, name) in _SHAPES:
            raise ValueError(f"decay shape {name!r} is already registered for compat={compat!r}; "
                             "pick another name")
        _SHAPES[(compat, name)] = ShapeSpec(
            name=name,
            compat=compat,
            fn=fn,
            defaults=tuple((options or {}).items()),
            resolve=resolve,
            requires_horizon=requires_horizon,
            horizon_unless=horizon_unless,
            monotone=monotone,
            own_warmup=own_warmup,
            example=tuple((example or {}).items()),
            summary=_first_line(fn),
        )
        return fn

    return decorate


def register_warmup(name: str, *, positive_start: bool = False) -> Callable[[Callable[[float, float], float]],
                                                                             Callable[[float, float], float]]:
    """Register a warm-up shape under ``name`` (a decorator).

    Args:
        name: the name users pass as ``warmup=``.
        positive_start: whether the shape needs a start factor above 0.

    Raises:
        ValueError: if the name is already registered.
    """

    def decorate(fn: Callable[[float, float], float]) -> Callable[[float, float], float]:
        if name in _WARMUPS:
            raise ValueError(f"warm-up shape {name!r} is already registered; pick another name")
        _WARMUPS[name] = WarmupSpec(name=name, fn=fn, positive_start=positive_start, summary=_first_line(fn))
        return fn

    return decorate


def list_shapes(compat: str = "default") -> list[str]:
    """Names of the decay shapes available under convention ``compat``, sorted."""
    if compat not in COMPATS:
        raise fail("compat", compat, f"expected one of {list(COMPATS)}", "use compat='default'")
    return sorted(name for kind, name in _SHAPES if kind == compat)


def horizonless_shapes(compat: str = "default") -> list[str]:
    """Names of the shapes of convention ``compat`` that need no ``total_steps``, sorted."""
    return sorted(name for (kind, name), spec in _SHAPES.items() if kind == compat and not spec.requires_horizon)


def list_warmups() -> list[str]:
    """Names of the warm-up shapes of the default convention, sorted."""
    return sorted(_WARMUPS)


def shape_table() -> Mapping[tuple[str, str], ShapeSpec]:
    """The live ``(compat, name) -> ShapeSpec`` table (read-only use)."""
    return _SHAPES


def warmup_table() -> Mapping[str, WarmupSpec]:
    """The live ``name -> WarmupSpec`` table (read-only use)."""
    return _WARMUPS


def get_shape(name: Any, compat: str = "default") -> ShapeSpec:
    """Return the decay shape ``name`` of convention ``compat``.

    Raises:
        ValueError: naming the valid shapes when ``name`` is unknown.
    """
    if compat not in COMPATS:
        raise fail("compat", compat, f"expected one of {list(COMPATS)}", "use compat='default', 'hf' or 'timm'")
    spec = _SHAPES.get((compat, name)) if isinstance(name, str) else None
    if spec is None:
        valid = list_shapes(compat)
        elsewhere = [kind for kind in COMPATS if (kind, name) in _SHAPES] if isinstance(name, str) else []
        close = difflib.get_close_matches(name, valid, n=1) if isinstance(name, str) else []
        if elsewhere:
            hint = f"{name!r} exists under compat={elsewhere[0]!r}; switch compat or pick one of these"
        elif close:
            hint = f"did you mean decay={close[0]!r}?"
        else:
            hint = f"pick one of them, e.g. decay={valid[0]!r}"
        raise fail("decay", name, f"compat={compat!r} has the decay shapes {valid}", hint)
    return spec


def get_warmup(name: Any) -> WarmupSpec:
    """Return the warm-up shape ``name``.

    Raises:
        ValueError: naming the valid warm-up shapes when ``name`` is unknown.
    """
    spec = _WARMUPS.get(name) if isinstance(name, str) else None
    if spec is None:
        valid = list_warmups()
        close = difflib.get_close_matches(name, valid, n=1) if isinstance(name, str) else []
        hint = f"did you mean warmup={close[0]!r}?" if close else "e.g. warmup='linear'"
        raise fail("warmup", name, f"expected one of the warm-up shapes {valid}", hint)
    return spec
