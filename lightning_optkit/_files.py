"""Files every component writes: atomic text and JSON files, and an early check that a directory is
writable (so a bad path fails at setup, not after training)."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

__all__ = ["check_writable", "write_atomic", "write_json_atomic"]



def check_writable(dirpath: str) -> str | None:
    """Create ``dirpath`` if needed and probe it with a temporary file.

    Returns:
        ``None`` when a file can be written there, else the reason it cannot.
    """
    try:
        os.makedirs(dirpath, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=dirpath, prefix=".optkit-probe-", delete=True):
            pass
    except OSError as err:
        return f"{type(err).__name__}: {err.strerror or err}"
    return None


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace`` (never half a file)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (values JSON cannot hold become ``str``)."""
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")
