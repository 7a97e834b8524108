"""The periodic cheap samples of one fit: memory and batch size."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from lightning.pytorch.utilities.data import extract_batch_size

from lightning_optkit.profiling.sampling import allocator_memory, process_rss_bytes
from lightning_optkit.profiling.series import BoundedSeries

__all__ = ["RunSamples", "batch_size_of"]


def batch_size_of(batch: Any) -> int | None:
    """Samples in ``batch``: the first dimension of its first tensor (Lightning's extractor as fallback)."""
    first = batch
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    if isinstance(first, dict) and first:
        first = next(iter(first.values()))
    if isinstance(first, torch.Tensor) and first.ndim > 0:
        return int(first.shape[0])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return int(extract_batch_size(batch))
    except Exception:
        return None


class RunSamples:
    """Memory over the run (the CUDA allocator's on a GPU, the process's resident set elsewhere) and batch sizes.

    Args:
        capacity: Memory samples kept (every second one is dropped when full; the last is always kept).
    """

    def __init__(self, capacity: int = 64) -> None:
        self.memory = BoundedSeries(capacity=capacity)
        #: Highest memory seen, in bytes (the allocator's peak on a GPU).
        self.peak = 0.0
        #: The CUDA device whose allocator is read, or None for the process memory.
        self.allocator_device: torch.device | None = None
        self._size_sum = 0.0
        self._sizes = 0

    def take(self, index: int, batch: Any = None) -> None:
        """Sample memory at step ``index`` and, if given, the size of ``batch``."""
        alloc = allocator_memory(self.allocator_device) if self.allocator_device is not None else None
        value = alloc["allocated"] if alloc else process_rss_bytes()
        if value is not None:
            self.memory.add(float(index), float(value))
            self.peak = max(self.peak, float(alloc["allocated_peak"] if alloc else value))
        if batch is not None:
            size = batch_size_of(batch)
            if size is not None:
                self._size_sum += size
                self._sizes += 1

    @property
    def batch_size(self) -> float | None:
        """Mean size of the sampled batches (None if none was measured)."""
        return self._size_sum / self._sizes if self._sizes else None
