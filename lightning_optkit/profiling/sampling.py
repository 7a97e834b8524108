"""Cheap periodic samples: process memory, allocator memory, compiled graphs, device facts.

Every function here is safe to call every few dozen steps: none synchronises a device.
``psutil`` is optional; without it the resident set size comes from ``/proc`` or ``resource``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

import torch

__all__ = [
    "DeviceInfo",
    "process_rss_bytes",
    "system_memory_bytes",
    "allocator_memory",
    "compiled_graphs",
    "dynamo_counters",
    "device_info",
]


@dataclass(frozen=True)
class DeviceInfo:
    """What the rules need to know about the accelerator (injectable in tests).

    Attributes:
        type: ``"cuda"``, ``"cpu"``, ``"mps"``, ...
        name: Device name.
        capability: CUDA compute capability ``(major, minor)`` or ``None``.
        total_memory: Device memory in bytes (system memory on CPU), or ``None``.
        precision: The trainer's precision setting, such as ``"32-true"`` or ``"bf16-mixed"``.
        pin_memory: Whether the training DataLoader pins memory (``None`` if unknown).
        num_workers: The training DataLoader's ``num_workers`` (``None`` if unknown).
    """

    type: str = "cpu"
    name: str = "cpu"
    capability: tuple[int, int] | None = None
    total_memory: int | None = None
    precision: str = "32-true"
    pin_memory: bool | None = None
    num_workers: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        data = asdict(self)
        data["capability"] = list(self.capability) if self.capability else None
        return data


_PROCESS: Any = None
#: ``(pid, descriptor)`` of this process's ``/proc/self/statm``, kept open: opening a ``/proc`` file in a
#: busy training process costs ~100 us, reading an open one again from offset 0 a few us
_STATM: tuple[int, int] | None = None


def _statm_rss() -> int:
    global _STATM
    pid = os.getpid()
    if _STATM is None or _STATM[0] != pid:  # first use, or a forked child (reopen its own)
        _STATM = (pid, os.open("/proc/self/statm", os.O_RDONLY))
    return int(os.pread(_STATM[1], 128, 0).split()[1]) * os.sysconf("SC_PAGE_SIZE")


def process_rss_bytes() -> int | None:
    """Resident set size of this process in bytes (``None`` if it cannot be read).

    ``/proc/self/statm`` where it exists (the value ``psutil`` reports on Linux), else ``psutil``, else
    the peak from ``resource``.
    """
    global _PROCESS
    try:
        return _statm_rss()
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        if _PROCESS is None or _PROCESS.pid != os.getpid():
            _PROCESS = psutil.Process()
        return int(_PROCESS.memory_info().rss)
    except Exception:  # psutil missing or restricted
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
    except Exception:
        return None


def system_memory_bytes() -> int | None:
    """Total system memory in bytes (``None`` if unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def allocator_memory(device: torch.device) -> dict[str, int] | None:
    """Allocated/reserved bytes, peaks and allocation retries of the CUDA caching allocator."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    stats = torch.cuda.memory_stats(device)
    return {
        "allocated": int(stats.get("allocated_bytes.all.current", 0)),
        "allocated_peak": int(stats.get("allocated_bytes.all.peak", 0)),
        "reserved": int(stats.get("reserved_bytes.all.current", 0)),
        "reserved_peak": int(stats.get("reserved_bytes.all.peak", 0)),
        "alloc_retries": int(stats.get("num_alloc_retries", 0)),
    }


def compiled_graphs() -> int:
    """Graphs compiled by ``torch.compile`` so far in this process (0 if dynamo is unused)."""
    counters = dynamo_counters()
    return 0 if counters is None else int(counters["stats"]["unique_graphs"])


_COUNTERS: Any = None


def dynamo_counters() -> Any:
    """``torch._dynamo.utils.counters`` if dynamo is loaded (``None`` otherwise); found once, then cached."""
    global _COUNTERS
    if _COUNTERS is None and "torch._dynamo" in sys.modules:
        try:
            from torch._dynamo.utils import counters

            _COUNTERS = counters
        except Exception:
            return None
    return _COUNTERS


def device_info(device: torch.device, precision: str = "32-true", loader: Any = None) -> DeviceInfo:
    """Describe ``device`` and the training DataLoader ``loader`` without synchronising anything."""
    pin = getattr(loader, "pin_memory", None)
    workers = getattr(loader, "num_workers", None)
    if device.type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(device)
        return DeviceInfo(
            type="cuda",
            name=str(props.name),
            capability=tuple(torch.cuda.get_device_capability(device)),  # type: ignore[arg-type]
            total_memory=int(props.total_memory),
            precision=str(precision),
            pin_memory=pin,
            num_workers=workers,
        )
    return DeviceInfo(
        type=device.type,
        name=device.type,
        total_memory=system_memory_bytes(),
        precision=str(precision),
        pin_memory=pin,
        num_workers=workers,
    )

