"""The package builds as a wheel that installs and imports in a fresh environment."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_wheel_builds_installs_and_imports(tmp_path) -> None:
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), REPO],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = dist.glob("lightning_optkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lightning_optkit/py.typed" in names
    assert "lightning_optkit/callbacks/warmup_decay/callback.py" in names
    assert not any(n.startswith(("tests/", "examples/", "benchmarks/")) for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    # torch pinned to the CPU build on disk; everything else resolved from the wheel's metadata
    install = subprocess.run([python, "-m", "pip", "install", "-q", "torch==2.13.0", str(wheel)],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    code = (
        "import lightning_optkit as k; "
        "from lightning_optkit import WarmupDecay, AutoOptimizer, AutoPrecision, BottleneckProfiler, OptKit; "
        "s = k.build_schedule(warmup_steps=2, total_steps=10); print(k.__version__, s(9))"
    )
    run = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["0.1.0", "0.0"]
    cli = subprocess.run([str(venv / "bin" / "lightning-optkit"), "--help"], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path)
    assert cli.returncode == 0 and "schedule" in cli.stdout
