"""Every check that needs a CUDA GPU, in one run of under seven minutes.

1. the GPU-marked tests (``pytest -m gpu``);
2. the demo (LightningCLI, all four components) on the GPU;
3. ``precision_gpu.py``: AutoPrecision against every fixed precision on GPU-sized models;
4. ``profiler_overhead.py`` on the GPU (when the script supports ``--device cuda``).

Each step runs in its own process with a time limit; its output goes to ``<out>/<step>.log``, and
the ``RATIO`` lines of all steps are repeated at the end of ``<out>/gpu_check.log``. The exit code
is non-zero when a step failed.

Usage: ``python benchmarks/gpu_check.py [--out DIR] [--quick]`` (``DIR`` defaults to ``$OUT`` or
``runs/gpu_check``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def steps(out: str, quick: bool) -> list[tuple[str, list[str], int]]:
    """``(name, command, seconds allowed)`` of every check."""
    py = sys.executable
    precision_models = "gpt,resnet" if quick else "gpt,resnet,gpt4096"
    return [
        ("environment", [py, "-c", (
            "import torch, lightning, sys; print(sys.version); print('torch', torch.__version__, 'lightning',"
            " lightning.__version__); print(torch.cuda.get_device_name(), torch.cuda.get_device_capability());"
            " import importlib.util as u; print({m: bool(u.find_spec(m)) for m in"
            " ('torchao', 'jsonargparse', 'prodigyopt', 'schedulefree', 'pynvml', 'rich', 'matplotlib')})")], 30),
        ("gpu_tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "-rA", "tests"], 100),
        ("demo", [py, "examples/train_digits.py", "fit", "--config", "examples/configs/demo.yaml",
                  "--trainer.accelerator=gpu", "--trainer.default_root_dir=/tmp/optkit_gpu_demo"], 80),
        ("precision", [py, os.path.join(HERE, "precision_gpu.py"), "--models", precision_models,
                       "--steps", "40", "--warmup", "15", "--rounds", "2",
                       "--json", os.path.join(out, "precision.json")], 150),
        ("profiler", [py, os.path.join(HERE, "profiler_overhead.py"), "--device", "cuda", "--quick"], 60),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or os.path.join(ROOT, "runs", "gpu_check"))
    parser.add_argument("--quick", action="store_true", help="smaller precision benchmark")
    parser.add_argument("--only", nargs="*", help="run only these steps")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    summary: list[str] = []
    ratios: list[str] = []
    failed = 0
    for name, command, limit in steps(args.out, args.quick):
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        with open(os.path.join(args.out, f"{name}.log"), "w", encoding="utf-8") as log:
            try:
                proc = subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      timeout=limit)
                code = proc.returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        seconds = time.perf_counter() - start
        with open(os.path.join(args.out, f"{name}.log"), encoding="utf-8", errors="replace") as log:
            text = log.read()
        ratios += [line for line in text.splitlines() if line.startswith("RATIO")]
        tail = [line for line in text.splitlines() if line.strip()][-3:]
        failed += code != 0
        line = f"{name}: exit {code} in {seconds:.0f} s | " + " / ".join(tail)[-400:]
        summary.append(line)
        print(line, flush=True)
    report = "\n".join(summary + ["", *ratios])
    with open(os.path.join(args.out, "gpu_check.log"), "w", encoding="utf-8") as handle:
        handle.write(report + "\n")
    print("\n".join(["", *ratios]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
