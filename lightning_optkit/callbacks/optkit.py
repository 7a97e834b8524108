"""``OptKit``: the recommended set of lightning_optkit components in one callback.

``Trainer(callbacks=[OptKit()])`` adds AutoOptimizer, WarmupDecay and BottleneckProfiler as
callbacks and installs AutoPrecision as the precision plugin, each configurable with a dict of its
arguments or switched off with ``False``. When fit starts the components cooperate through
:mod:`lightning_optkit._trainer`; OptKit prints their decisions as one start-of-fit summary.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.types import STEP_OUTPUT
from typing_extensions import override

from lightning_optkit._checks import fail
from lightning_optkit._trainer import current_search_phase, run_notes

__all__ = ["OptKit", "format_decisions"]

Part = Union[bool, dict[str, Any], None]
_SUMMARY_DEADLINE = 200  # steps after which the summary is printed even if a decision is missing


def _kwargs(name: str, value: Part) -> Optional[dict[str, Any]]:
    """The keyword arguments of part ``name`` (``None``: switched off)."""
    if value is None or value is True:
        return {}
    if value is False:
        return None
    if isinstance(value, dict):
        return dict(value)
    raise fail(name, value,
               "expected true (recommended settings), false (switched off) or a dict of the part's arguments",
               f"write e.g. {name}: {{verbose: false}}")


def format_decisions(decisions: dict[str, dict[str, Any]]) -> str:
    """The one start-of-fit summary: one block per component, from the recorded decisions."""
    lines = ["lightning_optkit decisions"]
    for component, summary in decisions.items():
        lines.append(f"  {component}:")
        headline = summary.get("summary") or summary.get("headline")
        if headline:
            lines.append(f"    {headline}")
        for key in ("choice", "chosen", "precision", "optimizer", "lr", "kernel", "count"):
            if key in summary and not isinstance(summary[key], (dict, list)):
                lines.append(f"    {key}: {summary[key]}")
        race = summary.get("race")
        if isinstance(race, dict) and race.get("curves"):
            dropped = race.get("dropped") or {}
            lines.append(
                f"    race: {len(race['curves'])} candidates, winner {race.get('winner')},"
                f" losers' cost {race.get('loser_steps', '?')} steps"
                + (f", dropped {', '.join(dropped)}" if dropped else "")
            )
        for group in summary.get("groups", [])[:8]:
            if isinstance(group, dict) and "warmup_steps" in group:
                floor = group.get("floor_lr")
                described = group.get("schedule") or {}
                warm = (described.get("warmup") or {}).get("shape")
                lines.append(
                    f"    group {group.get('group')}: {described.get('shape', '?')} decay,"
                    f" peak {group.get('peak_lr'):.3g},"
                    f" {warm + ' ' if warm else ''}warm-up {group.get('warmup_steps')} of"
                    f" {group.get('total_steps')} steps,"
                    f" floor {'n/a' if floor is None else format(floor, '.3g')}"
                )
        reasons = summary.get("reasons") or []
        for reason in list(reasons)[:4]:
            lines.append(f"    - {reason}")
    return "\n".join(lines)


class OptKit(Callback):
    """AutoOptimizer + WarmupDecay + AutoPrecision + BottleneckProfiler in one line.

    Each argument is ``true`` for the recommended settings, ``false`` to switch the part off, or a
    dict of that part's own arguments (see each class). The precision plugin is installed only if
    the Trainer still has the default full-precision plugin: an explicit ``precision=...`` or
    precision plugin of yours is kept.

    Args:
        optimizer: AutoOptimizer's arguments (chooses the optimizer, groups and LR).
        schedule: WarmupDecay's arguments (warm-up + decay around the chosen LR).
        precision: AutoPrecision's arguments (bf16 / fp16 / fp32 for the hardware).
        profiler: BottleneckProfiler's arguments (names what holds training back).
        summary: Print all decisions as one summary once they are made (rank zero).

    Example::

        trainer = Trainer(max_epochs=10, callbacks=[OptKit(schedule={"warmup": "5%"})])
    """

    def __init__(
        self,
        optimizer: Part = True,
        schedule: Part = True,
        precision: Part = True,
        profiler: Part = True,
        summary: bool = True,
    ) -> None:
        super().__init__()
        from lightning_optkit import AutoOptimizer, AutoPrecision, BottleneckProfiler, WarmupDecay

        self.summary = summary
        self.parts: dict[str, Any] = {}
        for name, value, cls in (
            ("profiler", profiler, BottleneckProfiler),
            ("optimizer", optimizer, AutoOptimizer),
            ("schedule", schedule, WarmupDecay),
            ("precision", precision, AutoPrecision),
        ):
            kwargs = _kwargs(name, value)
            if kwargs is None:
                continue
            if summary and name != "profiler":
                kwargs.setdefault("verbose", False)  # one summary instead of one print per part
            try:
                self.parts[name] = cls(**kwargs)
            except TypeError as err:
                raise ValueError(f"{name}={value!r}: {err}; see {cls.__name__}'s arguments") from None
            if name == "schedule" and "warmup" not in kwargs:
                self.parts[name].warmup_default_of = "OptKit"  # named when the default cannot apply
        self._printed = False

    @property
    def log(self) -> Any:
        """The module's ``log``, which Lightning attaches to every callback."""
        return self.__dict__.get("_log")

    @log.setter
    def log(self, fn: Any) -> None:
        # Lightning attaches ``module.log`` to its callbacks before it checks that the module
        # defines ``configure_optimizers``; the parts join ``trainer.callbacks`` only at setup,
        # so they are handed it here (AutoOptimizer installs its ``configure_optimizers`` then).
        self.__dict__["_log"] = fn
        for part in self.callbacks:
            part.log = fn

    @property
    def callbacks(self) -> list[Callback]:
        """The callback parts, in the order they run (profiler, optimizer, schedule)."""
        return [p for k, p in self.parts.items() if k != "precision"]

    @property
    def precision_plugin(self) -> Optional[Precision]:
        """The AutoPrecision part, or ``None`` when switched off."""
        return self.parts.get("precision")

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        position = trainer.callbacks.index(self)
        missing = [c for c in self.callbacks if not any(c is cb for cb in trainer.callbacks)]
        # inserted right after OptKit: Lightning's hook loop reaches them in this same call
        trainer.callbacks[position + 1:position + 1] = missing
        plugin = self.precision_plugin
        current = trainer.strategy.precision_plugin
        if plugin is not None and type(current) is Precision:
            trainer.strategy.precision_plugin = plugin
        elif plugin is not None and current is not plugin:
            run_notes(trainer).decisions["precision"] = {
                "summary": f"kept the Trainer's own precision plugin {type(current).__name__}"
            }
        self._printed = False

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        optimizer, schedule = self.parts.get("optimizer"), self.parts.get("schedule")
        if schedule is None or not getattr(optimizer, "kept_user_optimizer", False):
            return
        # the module's own optimizers (and schedulers) run as written: no schedule over them.
        # The parts run after OptKit in this same hook loop, so removing it here skips it.
        trainer.callbacks[:] = [c for c in trainer.callbacks if c is not schedule]
        run_notes(trainer).decisions["schedule"] = {
            "summary": "nothing scheduled: the module's own optimizers and schedulers are kept"
        }

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: STEP_OUTPUT, batch: Any, batch_idx: int
    ) -> None:
        if self._printed or not self.summary:
            return
        decisions = run_notes(trainer).decisions
        wanted = {"optimizer", "schedule", "precision"} & set(self.parts)
        done = wanted <= set(decisions) and current_search_phase(trainer) is None
        if done or trainer.global_step >= _SUMMARY_DEADLINE:
            self._printed = True
            if trainer.is_global_zero:
                rank_zero_info(format_decisions(decisions))
