"""Device-side timing of the compute phases, without synchronising: one interface, two backends.

The phase accountant calls ``mark(slot)`` where the compute phase changes (forward starts,
backward starts, the optimizer step starts, ``-1`` when none runs); the time from one mark to the
next belongs to the slot of the earlier mark. The same accountant code runs on every device; only
the backend differs. ``HostTimer`` reads
``perf_counter_ns`` (on a CPU the host *is* the device); ``CudaEventTimer`` records CUDA events
from a preallocated ring and reads them lazily in ``poll()``: only events the GPU has already
passed (``query()`` is true) are read, so nothing ever waits for the device.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["SLOTS", "HostTimer", "CudaEventTimer", "make_timer"]

#: Slots of the device timeline of one step.
SLOTS = ("forward", "backward", "between", "optimizer_step")


class HostTimer:
    """Marks read from a host clock; every interval is known immediately.

    Args:
        clock: Integer nanoseconds (``time.perf_counter_ns``).
    """

    def __init__(self, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self.clock = clock
        self.seconds = [0.0] * len(SLOTS)
        self._slot = -1
        self._last = 0

    def mark(self, slot: int) -> None:
        """Slot ``slot`` starts now; ``-1`` closes the current slot without opening another."""
        now = self.clock()
        if self._slot >= 0:
            self.seconds[self._slot] += (now - self._last) * 1e-9
        self._slot, self._last = slot, now

    def poll(self) -> None:
        """Nothing to collect: intervals are added as they end."""

    def totals(self) -> dict[str, float]:
        """Seconds per slot collected so far."""
        return {name: s for name, s in zip(SLOTS, self.seconds)}


class CudaEventTimer:
    """Marks recorded as CUDA events on the current stream and read lazily.

    Args:
        capacity: Events in the ring; when the GPU lags this far behind, new marks are dropped
            (counted in ``dropped``) rather than waiting.
        event_factory: Creates one timing event (``lambda: torch.cuda.Event(enable_timing=True)``).
    """

    def __init__(self, capacity: int = 1024, event_factory: Callable[[], Any] | None = None) -> None:
        if event_factory is None:
            import torch

            def event_factory() -> Any:
                return torch.cuda.Event(enable_timing=True)

        self.events = [event_factory() for _ in range(capacity)]
        self.slots = [-1] * capacity
        self.seconds = [0.0] * len(SLOTS)
        self.dropped = 0
        self._head = 0  # next event to record
        self._tail = 0  # oldest event not yet read
        self._count = 0

    def mark(self, slot: int) -> None:
        """Record an event opening ``slot`` (``-1`` only closes the previous slot)."""
        if self._count >= len(self.events):
            self.dropped += 1
            return
        self.events[self._head].record()
        self.slots[self._head] = slot
        self._head = (self._head + 1) % len(self.events)
        self._count += 1

    def poll(self) -> None:
        """Add the intervals between consecutive completed events; never waits for the GPU."""
        n = len(self.events)
        while self._count >= 2:
            first, second = self.events[self._tail], self.events[(self._tail + 1) % n]
            if not second.query():
                return
            slot = self.slots[self._tail]
            if slot >= 0:
                self.seconds[slot] += first.elapsed_time(second) / 1e3
            self._tail = (self._tail + 1) % n
            self._count -= 1

    def totals(self) -> dict[str, float]:
        """Seconds per slot read so far."""
        return {name: s for name, s in zip(SLOTS, self.seconds)}


def make_timer(device_type: str, mode: str = "auto") -> HostTimer | CudaEventTimer | None:
    """The device-timer backend.

    Args:
        device_type: ``"cuda"``, ``"cpu"``, ...
        mode: ``"auto"``: CUDA events on a GPU, none elsewhere (where the host *is* the device, the
            phase accounting already holds the device time); ``"events"``: CUDA events;
            ``"host"``: the host clock on any device; ``"off"``: none.
    """
    if mode == "off" or (mode == "auto" and device_type != "cuda"):
        return None
    if mode == "host":
        return HostTimer()
    return CudaEventTimer()
