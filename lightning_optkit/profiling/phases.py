"""Phase names, chart categories and the mapping from Lightning action names to phases.

Lightning names every hook it runs (``"[Callback]EarlyStopping{...}.on_train_batch_end"``,
``"[Strategy]SingleDeviceStrategy.backward"``, ``"run_training_batch"``, ...). This module turns
such a name into one exclusive *phase* (``forward``, ``callback:EarlyStopping.on_train_batch_end``,
...) and each phase into one of a fixed set of chart *categories*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "CATEGORIES",
    "CORE_PHASES",
    "EXCLUDED_CATEGORY",
    "TRANSPARENT",
    "BATCH_MARK",
    "Classification",
    "ActionClassifier",
    "category_of",
]

#: Fixed chart categories (the order of the timeline vectors and of the DDP summaries).
CATEGORIES: tuple[str, ...] = (
    "data_fetch",
    "host_to_device",
    "forward",
    "backward",
    "optimizer_step",
    "zero_grad",
    "callbacks",
    "logging",
    "validation",
    "checkpoint",
    "other",
    "excluded",
)
EXCLUDED_CATEGORY = CATEGORIES.index("excluded")

#: Phases that exist in every run, in a stable order (their index is their id).
CORE_PHASES: tuple[str, ...] = (
    "other",
    "data_fetch",
    "host_to_device",
    "forward",
    "backward",
    "optimizer_step",
    "zero_grad",
    "logging",
    "validation",
    "checkpoint",
    "profiler",
    "gc",
)

#: Classification code of actions that only group others (their own time goes to the gap phase).
TRANSPARENT = -1
#: Classification code of ``run_training_batch``: transparent, and marks that a batch ran.
BATCH_MARK = -2

_ACTION = re.compile(r"^\[(?P<kind>[^\]]+)\](?P<owner>.*)\.(?P<hook>[A-Za-z_0-9]+)$")
_STATE_SUFFIX = re.compile(r"\{.*\}$")

_MODULE_CORE = {
    "backward": "backward",
    # the optimizer's own ``step`` is timed separately; this hook's own time is Lightning's closure plumbing
    "optimizer_step": "other",
    "optimizer_zero_grad": "zero_grad",
    "on_before_zero_grad": "zero_grad",
    "configure_gradient_clipping": "optimizer_step",
    "on_save_checkpoint": "checkpoint",
    "transfer_batch_to_device": "host_to_device",
    "on_before_batch_transfer": "host_to_device",
    "on_after_batch_transfer": "host_to_device",
}
_STRATEGY_CORE = {
    "training_step": "forward",
    "backward": "backward",
    "batch_to_device": "host_to_device",
    "optimizer_step": "optimizer_step",
}
_VALIDATION_HOOK = re.compile(r"(validation|val_dataloader|val_next)")


def category_of(phase: str) -> int:
    """Index in :data:`CATEGORIES` of the chart category a phase belongs to."""
    if phase in CATEGORIES:
        return CATEGORIES.index(phase)
    if phase.startswith("logger:"):
        return CATEGORIES.index("logging")
    if phase.startswith(("callback:", "hook:")) or phase == "profiler":
        return CATEGORIES.index("callbacks")
    if phase.startswith("search:"):
        return EXCLUDED_CATEGORY
    return CATEGORIES.index("other")


@dataclass(frozen=True)
class Classification:
    """What one action name means.

    Attributes:
        phase: The exclusive phase its own time belongs to, or ``""`` when transparent.
        validation: Whether the action belongs to a validation run.
        code: :data:`TRANSPARENT`, :data:`BATCH_MARK` or ``0`` for an ordinary phase.
    """

    phase: str
    validation: bool = False
    code: int = 0


@dataclass
class ActionClassifier:
    """Maps Lightning action names to phases.

    Args:
        checkpoint_keys: ``state_key`` of every checkpoint callback (their hooks are checkpointing).
        own_key: ``state_key`` of the profiling callback itself (its hooks are profiler overhead).
        quiet: Action names of hooks nobody overrode (empty defaults): not timed on their own, their
            few hundred nanoseconds stay with the enclosing phase, which keeps the profiler cheap.
    """

    checkpoint_keys: frozenset[str] = field(default_factory=frozenset)
    own_key: str = ""
    quiet: frozenset[str] = field(default_factory=frozenset)

    def classify(self, name: str) -> Classification:
        """Classify one action name (see the module docstring)."""
        if name in ("run_training_epoch", "run_validation") or name in self.quiet:
            return Classification("", code=TRANSPARENT)
        if name == "run_training_batch":
            return Classification("", code=BATCH_MARK)
        if name == "save_checkpoint":
            return Classification("checkpoint")
        if name.endswith("train_dataloader_next"):
            return Classification("data_fetch")
        match = _ACTION.match(name)
        if match is None:
            return Classification("other")
        kind, owner, hook = match["kind"], match["owner"], match["hook"]
        validation = bool(_VALIDATION_HOOK.search(hook)) or "Evaluation" in kind
        if kind == "Callback":
            if owner in self.checkpoint_keys or "checkpoint" in hook:
                return Classification("checkpoint", validation)
            if owner == self.own_key:
                return Classification("profiler", validation)
            return Classification(f"callback:{_STATE_SUFFIX.sub('', owner)}.{hook}", validation)
        if kind == "Strategy":
            if validation:
                return Classification("validation", True)
            return Classification(_STRATEGY_CORE.get(hook, "other"))
        if kind == "LightningModule":
            if hook in _MODULE_CORE:
                return Classification(_MODULE_CORE[hook], validation)
            if validation:
                return Classification("validation", True)
            return Classification(f"hook:{owner}.{hook}")
        if kind == "LightningDataModule":
            return Classification("validation" if validation else "other", validation)
        if validation:
            return Classification("validation", True)
        return Classification("other")
