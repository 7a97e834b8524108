"""Run a two-process DDP helper script in a subprocess, with a timeout, and read each rank's JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["HELPERS", "run_ddp_script"]

HELPERS = Path(__file__).resolve().parent


def run_ddp_script(
    script: str, out: Path, *args: str, timeout: float = 300
) -> tuple[list[dict], subprocess.CompletedProcess]:
    """Run ``tests/helpers/<script> <out> *args``; fail with its stderr if it does not exit 0.

    Returns:
        The ``rank0.json`` and ``rank1.json`` the script wrote into ``out``, and the finished
        process (its ``stdout`` and ``stderr``).
    """
    env = dict(os.environ, PL_DISABLE_FORK="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(HELPERS / script), str(out), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    return ranks, proc
