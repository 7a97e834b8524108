"""A dynamic loss scaler on top of ``torch.amp.GradScaler``: hysteresis, a floor and a ceiling.

``GradScaler`` halves the scale on every overflow and has no floor. This subclass keeps its
``scale`` / ``unscale_`` / ``step`` (fused optimizers included: they receive ``grad_scale`` and
``found_inf`` and skip inside the kernel) and replaces ``update`` with the rule DeepSpeed and
Megatron users know:

* an overflow uses up one unit of ``hysteresis``; the scale is multiplied by ``backoff_factor``
  only once the tolerance is used up, and then on every further overflow until the scale grows
  again (growth restores the tolerance; ``consecutive_hysteresis`` restores it after any clean step);
* ``growth_interval`` consecutive clean steps multiply it by ``growth_factor``;
* the scale stays within ``[min_scale, max_scale]``.

Every counter (skipped steps, steps, consecutive skips, skips at the floor) lives in one tensor on
the device and is updated with tensor ops, so counting adds no host synchronisation.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from typing import Any

import torch
from torch.amp.grad_scaler import OptState, _refresh_per_optimizer_state

__all__ = ["DynamicGradScaler", "ScalerStats", "validate_scaler_options"]

# indices into the stats tensor
_SKIPPED, _STEPS, _CONSECUTIVE, _HYST_LEFT, _FLOOR_STREAK = range(5)
_STAT_KEYS = ("skipped_steps", "steps", "consecutive_skips", "hysteresis_left", "floor_streak")


def validate_scaler_options(
    init_scale: float,
    growth_factor: float,
    backoff_factor: float,
    growth_interval: int,
    hysteresis: int,
    min_scale: float,
    max_scale: float,
) -> None:
    """Raise ``ValueError`` naming the first bad argument, its value, the rule and a fix."""

    def positive(name: str, value: float) -> None:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name}={value!r} must be a positive finite number, such as 1.0 or 2**16")

    positive("init_scale", init_scale)
    positive("min_scale", min_scale)
    positive("max_scale", max_scale)
    if min_scale > max_scale:
        raise ValueError(f"min_scale={min_scale!r} is above max_scale={max_scale!r}; use "
                         "min_scale <= max_scale, such as min_scale=1.0 and max_scale=2**24")
    if not (isinstance(growth_factor, (int, float)) and math.isfinite(growth_factor) and growth_factor > 1):
        raise ValueError(f"growth_factor={growth_factor!r} must be greater than 1, such as 2.0")
    if not (isinstance(backoff_factor, (int, float)) and 0 < backoff_factor < 1):
        raise ValueError(f"backoff_factor={backoff_factor!r} must lie in (0, 1), such as 0.5")
    if not (isinstance(growth_interval, int) and growth_interval >= 1):
        raise ValueError(f"growth_interval={growth_interval!r} must be a positive integer, such as 2000")
    if not (isinstance(hysteresis, int) and hysteresis >= 1):
        raise ValueError(f"hysteresis={hysteresis!r} must be an integer >= 1 (1 backs off on every "
                         "overflow, as GradScaler does; DeepSpeed and Megatron use 2)")
    if not min_scale <= init_scale <= max_scale:
        warnings.warn(f"init_scale={init_scale!r} lies outside [min_scale={min_scale!r}, max_scale="
                      f"{max_scale!r}]; starting from {min(max(init_scale, min_scale), max_scale)!r}",
                      UserWarning, stacklevel=3)


class ScalerStats(dict):
    """Host copy of the scaler's counters: ``scale`` plus the keys of ``_STAT_KEYS``."""


class DynamicGradScaler(torch.amp.GradScaler):
    """``torch.amp.GradScaler`` with hysteresis, min/max scale and on-device skip counting.

    Args:
        device: Device type of the gradients (``"cuda"``, ``"cpu"``, ...).
        init_scale: Initial loss scale.
        growth_factor: Multiplier applied after ``growth_interval`` clean steps (> 1).
        backoff_factor: Multiplier applied on an overflow once the hysteresis is used up, in (0, 1).
        growth_interval: Consecutive clean steps before the scale grows.
        hysteresis: Overflows tolerated before the scale backs off (1 = on every overflow).
        min_scale: The floor of the scale.
        max_scale: The ceiling of the scale.
        consecutive_hysteresis: Restore the hysteresis after every clean step, so only consecutive
            overflows use it up.
    """

    def __init__(
        self,
        device: str = "cuda",
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        hysteresis: int = 2,
        min_scale: float = 1.0,
        max_scale: float = 2.0**24,
        consecutive_hysteresis: bool = False,
    ) -> None:
        validate_scaler_options(init_scale, growth_factor, backoff_factor, growth_interval, hysteresis,
                                min_scale, max_scale)
        init_scale = min(max(float(init_scale), min_scale), max_scale)
        super().__init__(device, init_scale=init_scale, growth_factor=growth_factor,
                         backoff_factor=backoff_factor, growth_interval=growth_interval, enabled=True)
        self.hysteresis = int(hysteresis)
        self.min_scale = float(min_scale)
        self.max_scale = float(max_scale)
        self.consecutive_hysteresis = bool(consecutive_hysteresis)
        self._init_stats = [0, 0, 0, self.hysteresis, 0]
        self._stats: torch.Tensor | None = None

    # ------------------------------------------------------------------ lazy device state
    def _lazy_init_scale_growth_tracker(self, dev: torch.device) -> None:
        super()._lazy_init_scale_growth_tracker(dev)
        self._stats = torch.tensor(self._init_stats, dtype=torch.int64, device=dev)

    def _ensure_state(self) -> None:
        if self._scale is None:
            self._lazy_init_scale_growth_tracker(torch.device(self._device))

    # ------------------------------------------------------------------ the update rule
    def found_inf(self, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """This step's overflow flag for ``optimizer`` (after ``unscale_`` or ``step``), on device."""
        per_device = self._per_optimizer_states[id(optimizer)]["found_inf_per_device"]
        if not per_device:
            raise RuntimeError("found_inf() needs unscale_(optimizer) or step(optimizer) first")
        assert self._scale is not None  # set by scale()
        return sum(t.to(self._scale.device, non_blocking=True) for t in per_device.values()) > 0

    def is_unscaled(self, optimizer: torch.optim.Optimizer) -> bool:
        """``unscale_(optimizer)`` was already called since the last ``update()``."""
        state = self._per_optimizer_states.get(id(optimizer))
        return state is not None and state["stage"] is OptState.UNSCALED

    def forget(self, optimizer: torch.optim.Optimizer) -> None:
        """Drop this step's unscale/inf records of ``optimizer`` (to redo its backward)."""
        self._per_optimizer_states[id(optimizer)] = _refresh_per_optimizer_state()

    def update(self, new_scale: float | torch.Tensor | None = None) -> None:
        """Count the step and update the scale (device ops only; no host synchronisation)."""
        if new_scale is not None:
            super().update(new_scale)
            return
        scale, _ = self._check_scale_growth_tracker("update")
        found = [t.to(scale.device, non_blocking=True)
                 for state in self._per_optimizer_states.values()
                 for t in state["found_inf_per_device"].values()]
        if not found:
            raise RuntimeError("No inf checks were recorded before update(); call step(optimizer) first")
        self._apply(torch.stack(found).sum() > 0)
        self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)

    def record_step(self, found_inf: torch.Tensor | bool) -> None:
        """Count one step and update the scale from an overflow flag computed elsewhere.

        ``update()`` does this with the flags gathered by ``unscale_``/``step``; this entry point
        serves optimizers or loops that detect overflows themselves.
        """
        self._ensure_state()
        assert self._scale is not None
        flag = torch.as_tensor(found_inf, device=self._scale.device)
        self._apply(flag.reshape(()).to(torch.bool))

    def _apply(self, found: torch.Tensor) -> None:
        scale, tracker = self._check_scale_growth_tracker("update")
        stats = self._stats
        assert stats is not None
        f = found.to(torch.int64)
        at_floor = scale <= self.min_scale
        hyst = stats[_HYST_LEFT] - f
        drop = found & (hyst <= 0)
        hyst = hyst.clamp(min=0)
        grown_tracker = torch.where(found, torch.zeros_like(tracker), tracker + 1)
        grow = grown_tracker >= self._growth_interval
        new_tracker = torch.where(grow, torch.zeros_like(tracker), grown_tracker)
        new_scale = torch.where(drop, scale * self._backoff_factor,
                                torch.where(grow, scale * self._growth_factor, scale))
        new_scale = new_scale.clamp(self.min_scale, self.max_scale)
        full = torch.full_like(hyst, self.hysteresis)
        hyst = torch.where(grow, full, hyst)
        if self.consecutive_hysteresis:
            hyst = torch.where(found, hyst, full)
        new_stats = torch.stack([
            stats[_SKIPPED] + f,
            stats[_STEPS] + 1,
            (stats[_CONSECUTIVE] + 1) * f,
            hyst,
            (stats[_FLOOR_STREAK] + 1) * (f * at_floor.to(torch.int64)),
        ])
        scale.copy_(new_scale)
        tracker.copy_(new_tracker)
        stats.copy_(new_stats)

    # ------------------------------------------------------------------ host views
    def stats_tensor(self) -> torch.Tensor:
        """``[scale, skipped, steps, consecutive, hysteresis_left, floor_streak]`` as a new device tensor."""
        self._ensure_state()
        assert self._scale is not None and self._stats is not None
        return torch.cat([self._scale.reshape(1).double(), self._stats.double()])

    @staticmethod
    def stats_from_tensor(values: torch.Tensor | list[float]) -> ScalerStats:
        """Turn :meth:`stats_tensor` (or its ``tolist()``) into a :class:`ScalerStats` (host read)."""
        row = values.tolist() if isinstance(values, torch.Tensor) else list(values)
        out = ScalerStats(scale=float(row[0]))
        out.update({key: int(v) for key, v in zip(_STAT_KEYS, row[1:])})
        return out

    def stats(self) -> ScalerStats:
        """Host copy of the scale and counters (one device read; none before the first step)."""
        if self._scale is None:  # not used yet: do not allocate on a device guessed too early
            return self.stats_from_tensor([self._init_scale, *self._init_stats])
        return self.stats_from_tensor(self.stats_tensor())

    @property
    def skipped_steps(self) -> int:
        """Steps skipped so far (one device read)."""
        return self.stats()["skipped_steps"]

    def set_scale(self, value: float) -> None:
        """Set the current scale (clamped to ``[min_scale, max_scale]``)."""
        value = min(max(float(value), self.min_scale), self.max_scale)
        if self._scale is None:
            self._init_scale = value
        else:
            self._scale.fill_(value)

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """GradScaler's keys plus the hysteresis settings and counters."""
        state = super().state_dict()
        stats = self.stats()
        state.update({key: stats[key] for key in _STAT_KEYS})
        state.update(hysteresis=self.hysteresis, min_scale=self.min_scale, max_scale=self.max_scale,
                     consecutive_hysteresis=self.consecutive_hysteresis)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the scale, growth tracker and counters; a plain GradScaler state works too.

        The knobs (factors, interval, hysteresis, bounds) stay as constructed, so a resumed run can
        change them; the scale is clamped into the constructed ``[min_scale, max_scale]``.
        """
        if not state_dict or "scale" not in state_dict:
            raise ValueError("the scaler state is empty or has no 'scale'; it was saved by a disabled "
                             "scaler or is not a GradScaler state")
        scale = min(max(float(state_dict["scale"]), self.min_scale), self.max_scale)
        tracker = int(state_dict.get("_growth_tracker", 0))
        stats = [int(state_dict.get(key, default)) for key, default in
                 zip(_STAT_KEYS, (0, 0, 0, self.hysteresis, 0))]
        stats[_HYST_LEFT] = min(stats[_HYST_LEFT], self.hysteresis)
        self._init_scale, self._init_growth_tracker, self._init_stats = scale, tracker, stats
        if self._scale is not None and self._growth_tracker is not None and self._stats is not None:
            self._scale.fill_(scale)
            self._growth_tracker.fill_(tracker)
            self._stats.copy_(torch.tensor(stats, dtype=torch.int64))

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        if self._stats is not None:
            state["_init_stats"] = [int(v) for v in self._stats.tolist()]
        state["_stats"] = None
        return state
