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

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from torch.amp.grad_scaler import OptState, _refresh_per_optimizer_state

from lightning_optkit.precision.options import ScalerConfig, as_group

__all__ = ["DynamicGradScaler", "ScalerStats"]

_MAX_CALIBRATION_RERUNS = 8

# indices into the stats tensor
_SKIPPED, _STEPS, _CONSECUTIVE, _HYST_LEFT, _FLOOR_STREAK = range(5)
_STAT_KEYS = ("skipped_steps", "steps", "consecutive_skips", "hysteresis_left", "floor_streak")


class ScalerStats(dict):
    """Host copy of the scaler's counters: ``scale`` plus the keys of ``_STAT_KEYS``."""


class DynamicGradScaler(torch.amp.GradScaler):
    """``torch.amp.GradScaler`` with hysteresis, min/max scale and on-device skip counting.

    Args:
        device: Device type of the gradients (``"cuda"``, ``"cpu"``, ...).
        config: The scaler's settings (:class:`ScalerConfig`, checked when it was built);
            ``None`` uses the defaults.
    """

    def __init__(self, device: str = "cuda", config: ScalerConfig | None = None) -> None:
        config = as_group("config", config, ScalerConfig)
        super().__init__(device, init_scale=config.start_scale, growth_factor=config.growth_factor,
                         backoff_factor=config.backoff_factor, growth_interval=config.growth_interval,
                         enabled=True)
        self.config = config
        self.hysteresis = config.hysteresis
        self.min_scale = config.min_scale
        self.max_scale = config.max_scale
        self.consecutive_hysteresis = config.consecutive_hysteresis
        self._init_stats = [0, 0, 0, self.hysteresis, 0]
        self._stats: torch.Tensor | None = None
        self._lag: torch.Tensor | None = None

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

    def stats_lagged(self) -> ScalerStats | None:
        """The counters as they were at the previous call (``None`` on the first call).

        For accelerators: this call snapshots the counters on the device and reads the previous
        snapshot, whose kernels ran before the current step's were queued, so the read waits for
        them while the device still has the current step's work.
        """
        previous, self._lag = self._lag, self.stats_tensor()
        return None if previous is None else self.stats_from_tensor(previous)

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

    def calibrate(self, optimizer: torch.optim.Optimizer, closure: Callable[[], Any],
                  loss: Any) -> tuple[Any, dict[str, Any]]:
        """Lower the scale (by ``backoff_factor**4`` per try) and re-run ``closure`` until the
        gradients of ``optimizer`` are finite (at most 8 re-runs, never below ``min_scale``).

        Args:
            optimizer: The optimizer whose gradients the first ``closure`` call produced.
            closure: Forward and scaled backward of the same batch; returns the loss.
            loss: What the first call returned; ``None`` when there is nothing to re-run.

        Returns:
            The last loss and ``{"initial_scale", "scale", "reruns"}``.
        """
        start, reruns = self.get_scale(), 0
        while loss is not None:
            if not bool(torch.isfinite(loss).all()):
                break  # the loss itself is not finite: not a scaling problem
            self.unscale_(optimizer)
            if not bool(self.found_inf(optimizer)):
                break
            scale = self.get_scale()
            if scale <= self.min_scale or reruns >= _MAX_CALIBRATION_RERUNS:
                break
            self.forget(optimizer)
            self.set_scale(scale * self.get_backoff_factor() ** 4)
            loss = closure()
            reruns += 1
        return loss, {"initial_scale": start, "scale": self.get_scale(), "reruns": reruns}

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
        state["_lag"] = None
        return state
