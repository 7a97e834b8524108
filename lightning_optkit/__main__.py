"""``python -m lightning_optkit``: see :mod:`lightning_optkit.cli`."""

from __future__ import annotations

import sys

from lightning_optkit.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
