"""Run every benchmark in this folder and print one table of the ratios each measured.

Each benchmark prints its claims as lines ``RATIO <name> <description> = <value> (target ...)``;
this script runs them one after another (so they do not compete for the CPU) and collects those
lines into one table with the date.

    python benchmarks/run_all.py [--full] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_RATIO = re.compile(r"^RATIO\s+(?P<name>\S+)\s+(?P<rest>.*)$")


def scripts(only: list[str] | None) -> list[str]:
    names = sorted(f for f in os.listdir(HERE) if f.endswith(".py")
                   and f not in (os.path.basename(__file__), "gpu_check.py"))
    if only:
        names = [n for n in names if any(o in n for o in only)]
    return [os.path.join(HERE, n) for n in names]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-length runs instead of --quick")
    parser.add_argument("--only", nargs="*", help="run only scripts whose name contains one of these")
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []
    failed = 0
    for path in scripts(args.only):
        name = os.path.basename(path)
        command = [sys.executable, path] + ([] if args.full else ["--quick"])
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, cwd=os.path.dirname(HERE))
        seconds = time.perf_counter() - start
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            failed += 1
            sys.stdout.write(proc.stderr[-3000:])
            rows.append((name, "FAILED", f"exit code {proc.returncode}"))
            continue
        found = [m for m in (_RATIO.match(line.strip()) for line in proc.stdout.splitlines()) if m]
        for match in found:
            rows.append((name, match.group("name"), match.group("rest")))
        print(f"   ({seconds:.0f} s)")
    print()
    print(f"Benchmarks measured {dt.date.today().isoformat()} on {platform.machine()}, "
          f"{os.cpu_count()} CPU cores, Python {platform.python_version()}")
    print()
    width = max((len(r[1]) for r in rows), default=10)
    print(f"| {'script':<24} | {'claim':<{width}} | measured |")
    print(f"|{'-' * 26}|{'-' * (width + 2)}|----------|")
    for script, claim, rest in rows:
        print(f"| {script:<24} | {claim:<{width}} | {rest} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
