"""Summaries of a short ``torch.profiler`` window: top operators and host-synchronising calls."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["SYNC_OPS", "summarise_window", "user_frame"]

#: Operators that make the host wait for the device (or read a value back to Python).
SYNC_OPS = frozenset(
    {
        "aten::item",
        "aten::_local_scalar_dense",
        "aten::is_nonzero",
        "aten::tolist",
        "cudaDeviceSynchronize",
        "cudaStreamSynchronize",
        "cudaEventSynchronize",
    }
)
# `.item()` appears as aten::item calling aten::_local_scalar_dense: count only the outer one.
_COUNTED = SYNC_OPS - {"aten::_local_scalar_dense"}
_LIBRARY_MARKERS = (os.sep + "torch" + os.sep, os.sep + "lightning" + os.sep, "site-packages", "<built-in")
# python-function events name library frames relative to site-packages: "torch/nn/modules/module.py(1): f"
_LIBRARY_PREFIXES = ("torch/", "lightning/", "lightning_fabric/", "lightning_utilities/", "pytorch_lightning/",
                     "torchmetrics/", "lightning_optkit/", "<built-in", "<frozen", "contextlib.py", "functools.py",
                     "threading.py", "typing.py")


def _is_library(frame: str) -> bool:
    return frame.startswith(_LIBRARY_PREFIXES) or any(marker in frame for marker in _LIBRARY_MARKERS)


def user_frame(stack: list[str] | tuple[str, ...] | None) -> str | None:
    """The innermost stack frame outside torch/Lightning/site-packages (``"file.py(12): fn"``)."""
    for frame in stack or ():
        if not _is_library(frame):
            return frame
    return None


def _call_site(event: Any) -> str | None:
    """The user's frame of an operator: from its recorded stack, else from its Python-function parents."""
    found = user_frame(getattr(event, "stack", None))
    if found is not None:
        return found
    parent = getattr(event, "cpu_parent", None)
    for _ in range(64):
        if parent is None:
            return None
        if getattr(parent, "is_python_function", False) or ".py(" in str(parent.name):
            name = str(parent.name)
            if not _is_library(name):
                return name
        parent = getattr(parent, "cpu_parent", None)
    return None


def summarise_window(events: Any, steps: int, top: int = 8) -> dict[str, Any]:
    """Summarise the events of a ``torch.profiler.profile`` run over ``steps`` training steps.

    Args:
        events: ``prof.events()`` (a list of ``FunctionEvent``-like objects with ``name``,
            ``self_cpu_time_total``, ``self_device_time_total`` and ``stack``).
        steps: Number of training steps the window covered.
        top: How many operators to keep.

    Returns:
        ``{"steps", "top_operators": [{"name", "calls", "self_cpu_ms", "self_device_ms"}],
        "sync_calls", "sync_calls_per_step", "sync_ms", "sync_sites": [{"where", "calls"}]}``.
    """
    per_op: dict[str, list[float]] = {}
    sync_calls = 0
    sync_us = 0.0
    sites: dict[str, int] = {}
    for event in events:
        name = str(getattr(event, "name", ""))
        if getattr(event, "is_python_function", False) or name.startswith("<built-in"):
            continue
        cpu = float(getattr(event, "self_cpu_time_total", 0.0) or 0.0)
        device = float(getattr(event, "self_device_time_total", 0.0) or 0.0)
        slot = per_op.setdefault(name, [0, 0.0, 0.0])
        slot[0] += 1
        slot[1] += cpu
        slot[2] += device
        if name in SYNC_OPS:
            sync_us += cpu
            if name in _COUNTED:
                sync_calls += 1
                where = _call_site(event) or "unknown"
                sites[where] = sites.get(where, 0) + 1
    ranked = sorted(per_op.items(), key=lambda item: item[1][1] + item[1][2], reverse=True)
    steps = max(int(steps), 1)
    return {
        "steps": steps,
        "top_operators": [
            {"name": name, "calls": int(v[0]), "self_cpu_ms": round(v[1] / 1e3, 3), "self_device_ms": round(v[2] / 1e3, 3)}
            for name, v in ranked[:top]
            if not name.startswith("ProfilerStep")
        ],
        "sync_calls": sync_calls,
        "sync_calls_per_step": sync_calls / steps,
        "sync_ms": round(sync_us / 1e3, 3),
        "sync_sites": [
            {"where": where, "calls": calls}
            for where, calls in sorted(sites.items(), key=lambda item: item[1], reverse=True)[:5]
        ],
    }
