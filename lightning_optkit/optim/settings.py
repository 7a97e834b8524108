"""The user's optimizer settings, declared and checked once.

``AutoOptimizer`` takes them as flat keyword arguments (so YAML configs and ``--help`` list them)
and builds an :class:`OptimizerSettings` from them; the planning in :mod:`.decide` reads only this
record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from lightning_optkit._checks import as_choice, as_float, as_int, fail
from lightning_optkit.optim.groups import check_group_value
from lightning_optkit.optim.registry import resolve_optimizer_class

__all__ = ["Kernel", "LRTest", "Mode", "OptimizerSettings"]

Mode = Literal["auto", "rules", "race"]
LRTest = Literal["auto", "always", "never"]
Kernel = Literal["auto", "fused", "foreach", "for-loop"]


@dataclass(frozen=True)
class OptimizerSettings:
    """What the user fixed and how much search they allow (see ``AutoOptimizer`` for each).

    Attributes:
        mode: ``"rules"``, ``"race"`` or ``"auto"`` (race when the run affords it).
        candidates: Optimizer names to choose from, in order of preference; ``None``: the rules'.
        lr: A fixed peak learning rate, or ``None``.
        weight_decay: A fixed weight decay for the decayed group, or ``None``.
        embedding_lr_mult: A fixed LR multiplier of the embedding group, or ``None``.
        layer_decay: Layer-wise LR decay in (0, 1], or ``None``.
        budget: The losers' steps: a fraction of the run (< 1) or a number of steps (>= 1).
        lr_test: When the LR range test runs: ``"auto"``, ``"always"`` or ``"never"``.
        kernel: ``"auto"`` (timed) or a forced kernel.
        max_candidates: The most candidates the rules put in a race.

    Raises:
        ValueError: On a bad value, naming the argument, the value, what is allowed and a fix.
        MissingOptimizerPackage: If a named optimizer's package is not installed (also a
            ``ValueError`` and an ``ImportError``).
    """

    mode: Mode = "auto"
    candidates: Sequence[str] | None = None  # stored as a tuple
    lr: float | None = None
    weight_decay: float | None = None
    embedding_lr_mult: float | None = None
    layer_decay: float | None = None
    budget: float = 0.05
    lr_test: LRTest = "auto"
    kernel: Kernel = "auto"
    max_candidates: int = 3

    def __post_init__(self) -> None:
        as_choice("mode", self.mode, get_args(Mode))
        as_choice("lr_test", self.lr_test, get_args(LRTest))
        as_choice("kernel", self.kernel, get_args(Kernel))
        checked: dict[str, Any] = {
            arg: check_group_value(arg, getattr(self, arg))
            for arg in ("lr", "weight_decay", "embedding_lr_mult", "layer_decay")
        }
        checked["budget"] = as_float("budget", _share(self.budget), low=0.0, low_open=True,
                                     example=0.05)
        checked["max_candidates"] = as_int("max_candidates", self.max_candidates, minimum=1,
                                           example=3)
        checked["candidates"] = _candidates(self.candidates)
        for name, value in checked.items():
            object.__setattr__(self, name, value)


def _share(value: Any) -> Any:
    """``"5%"`` -> ``0.05`` (durations elsewhere take percentages); other values unchanged."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            share = float(value.strip()[:-1]) / 100.0
        except ValueError:
            share = -1.0
        if not 0.0 < share < 1.0:
            raise fail("budget", value, "expected a share such as '5%', a fraction such as 0.05 "
                       "or a number of steps such as 50", "pass e.g. budget='5%'")
        return share
    return value


def _candidates(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]  # one name: a single candidate, not its letters
    if isinstance(value, bytes) or not isinstance(value, Sequence):
        raise fail("candidates", value, "expected a list of optimizer names or None",
                   "pass e.g. candidates=['adamw', 'sgd']")
    if len(value) == 0:
        raise fail("candidates", value, "expected at least one optimizer name",
                   "name some, e.g. candidates=['adamw', 'sgd'], or pass None to let the rules "
                   "choose")
    for name in value:
        try:
            resolve_optimizer_class(name)
        except (ValueError, ImportError) as err:
            raise type(err)(f"candidates: {err}") from err
    return tuple(value)
