"""What the Lightning classes share: notes about a run kept on the Trainer, and the rank gather.

The four components never import each other. They meet through this small protocol, stored as
one attribute of the ``Trainer``:

* **decisions**: each component records what it chose (``record_decision``), so one start-of-fit
  summary and the bottleneck report can show every choice.
* **search phase**: while steps are spent on a search (the optimizer race, the precision probe),
  the component names it (``search_phase``); the profiler attributes those steps to that phase
  instead of blaming the run.
* **skipped updates**: a precision plugin that skips optimizer updates on inf/nan gradients
  exposes ``skipped_steps`` (an ``int`` property); ``skipped_updates`` reads it.

``gather_rows`` is the one all-gather of the package: every rank sends a float vector of the same
length, so a collective can never wait on a shape mismatch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "RunNotes",
    "run_notes",
    "record_decision",
    "search_phase",
    "current_search_phase",
    "set_search_phase",
    "skipped_updates",
    "gather_rows",
]

_ATTR = "_lightning_optkit_notes"


@dataclass
class RunNotes:
    """Shared notes of one Trainer.

    Attributes:
        decisions: component name -> a JSON-serialisable summary of its decision.
        phase: the name of the search that is using the current steps, or ``None``.
    """

    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    phase: str | None = None


def run_notes(trainer: Any) -> RunNotes:
    """Return the notes attached to ``trainer``, creating them on first use."""
    notes = getattr(trainer, _ATTR, None)
    if notes is None:
        notes = RunNotes()
        setattr(trainer, _ATTR, notes)
    return notes


def record_decision(trainer: Any, component: str, summary: dict[str, Any]) -> None:
    """Record ``component``'s decision (a JSON-serialisable dict) on ``trainer``."""
    run_notes(trainer).decisions[component] = summary


@contextmanager
def search_phase(trainer: Any, name: str) -> Iterator[None]:
    """Mark the steps run inside the block as spent on the search ``name``."""
    notes = run_notes(trainer)
    previous, notes.phase = notes.phase, name
    try:
        yield
    finally:
        notes.phase = previous


def set_search_phase(trainer: Any, name: str | None) -> None:
    """Start (``name``) or end (``None``) a search that spans several hooks."""
    run_notes(trainer).phase = name


def current_search_phase(trainer: Any) -> str | None:
    """The search that is using the current steps, or ``None`` for ordinary training."""
    notes = getattr(trainer, _ATTR, None)
    return None if notes is None else notes.phase


def skipped_updates(trainer: Any) -> int | None:
    """Optimizer updates skipped so far by the precision plugin, or ``None`` if it cannot tell."""
    plugin = getattr(trainer, "precision_plugin", None)
    value = getattr(plugin, "skipped_steps", None)
    return None if value is None else int(value)


def gather_rows(strategy: Any, row: list[float]) -> list[list[float]]:
    """Every rank's ``row`` through the strategy's ``all_gather``, in rank order.

    Args:
        strategy: the Trainer's strategy (anything with ``root_device`` and ``all_gather``).
        row: this rank's values; every rank must send the same length.

    Returns:
        One list per rank (a single list when the run has one process).
    """
    tensor = torch.tensor(row, dtype=torch.float64, device=strategy.root_device)
    out = strategy.all_gather(tensor)
    return out.reshape(-1, len(row)).cpu().tolist()
