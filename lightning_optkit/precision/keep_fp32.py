"""Run chosen modules outside autocast, in fp32.

An entry of ``keep_fp32`` names modules in one of three ways, tried in this order:

1. a module name as in ``model.named_modules()`` (``"net.3"``, ``"head"``);
2. a type: a class, a class name (``"LayerNorm"``) or a dotted path (``"torch.nn.LayerNorm"``),
   matching instances of that class and its subclasses;
3. a regular expression matched in full against module names (``r"blocks\\.\\d+\\.norm"``).

A matched module's ``forward`` runs with autocast disabled and its floating half-precision inputs
cast to fp32. An entry that matches nothing is an error: a typo would otherwise leave the module in
half precision without a word.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["Fp32Forward", "apply_keep_fp32", "match_keep_fp32", "remove_keep_fp32", "validate_keep_fp32"]


def validate_keep_fp32(entries: Sequence[str | type] | None) -> list[str | type]:
    """Check the entries' types and regular expressions at construction.

    Raises:
        ValueError: An entry is neither a string nor a class, or a string that is neither a
            name nor a valid regular expression.
    """
    if entries is None:
        return []
    if isinstance(entries, (str, type)):
        entries = [entries]
    out: list[str | type] = []
    for entry in entries:
        if isinstance(entry, type):
            if not issubclass(entry, nn.Module):
                raise ValueError(  # noqa: TRY004 - the project reports bad arguments as ValueError
                    f"keep_fp32 entry {entry!r} is a class but not a torch.nn.Module subclass")
        elif isinstance(entry, str):
            if not entry:
                raise ValueError("keep_fp32 entry '' is empty; give a module name, type or pattern")
            try:
                re.compile(entry)
            except re.error as err:
                raise ValueError(f"keep_fp32 entry {entry!r} is not a module name, type or valid "
                                 f"regular expression ({err}); escape special characters such as '.'") from err
        else:
            raise ValueError(  # noqa: TRY004 - the project reports bad arguments as ValueError
                f"keep_fp32 entry {entry!r} must be a module name, type name, class or "
                "regular expression, such as 'head', 'LayerNorm' or r'blocks\\.\\d+\\.norm'")
        out.append(entry)
    return out


def _resolve_type(entry: str) -> type | None:
    if "." not in entry:
        return None
    module_path, _, name = entry.rpartition(".")
    try:
        value = getattr(importlib.import_module(module_path), name)
    except (ImportError, AttributeError, ValueError):
        return None
    return value if isinstance(value, type) and issubclass(value, nn.Module) else None


def _entry_matches(entry: str | type, name: str, module: nn.Module, resolved: type | None) -> bool:
    if isinstance(entry, type):
        return isinstance(module, entry)
    if name == entry:
        return True
    if resolved is not None and isinstance(module, resolved):
        return True
    if any(cls.__name__ == entry for cls in type(module).__mro__):
        return True
    return re.fullmatch(entry, name) is not None


def match_keep_fp32(model: nn.Module, entries: Sequence[str | type]) -> dict[str, list[str]]:
    """Map each entry (as text) to the module names it matches.

    Raises:
        ValueError: An entry matches no module of ``model``.
    """
    matches: dict[str, list[str]] = {}
    named = [(n, m) for n, m in model.named_modules() if n]
    for entry in entries:
        resolved = _resolve_type(entry) if isinstance(entry, str) else None
        names = [n for n, m in named if _entry_matches(entry, n, m, resolved)]
        key = entry if isinstance(entry, str) else f"{entry.__module__}.{entry.__qualname__}"
        if not names:
            sample = ", ".join(repr(n) for n, _ in named[:6]) or "none"
            raise ValueError(f"keep_fp32 entry {key!r} matches no module of {type(model).__name__}; "
                             f"module names are e.g. {sample}; give a name, a type such as "
                             "'LayerNorm' or a regular expression matching full names")
        matches[key] = names
    return matches


def _to_fp32(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.dtype in (torch.float16, torch.bfloat16):
        return value.float()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_fp32(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_fp32(v) for k, v in value.items()}
    return value


class Fp32Forward:
    """A module's ``forward`` run with autocast disabled and half inputs cast to fp32."""

    def __init__(self, forward: Any, device_type: str) -> None:
        self.forward = forward
        self.device_type = device_type

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not torch.is_autocast_enabled(self.device_type):
            return self.forward(*args, **kwargs)
        with torch.autocast(self.device_type, enabled=False):
            return self.forward(*_to_fp32(args), **_to_fp32(kwargs))


def apply_keep_fp32(model: nn.Module, names: Sequence[str], device_type: str) -> int:
    """Wrap the ``forward`` of the named modules (idempotent); returns how many were wrapped now."""
    wrapped = 0
    modules = dict(model.named_modules())
    for name in names:
        module = modules[name]
        current = module.__dict__.get("forward")
        if isinstance(current, Fp32Forward):
            current.device_type = device_type
            continue
        module.forward = Fp32Forward(module.forward, device_type)  # type: ignore[method-assign]
        wrapped += 1
    return wrapped


def remove_keep_fp32(model: nn.Module) -> None:
    """Undo :func:`apply_keep_fp32` on every module of ``model``."""
    for module in model.modules():
        if isinstance(module.__dict__.get("forward"), Fp32Forward):
            del module.forward
