"""The ``lightning-optkit`` command line (``python -m lightning_optkit``), one module per subcommand.

Modules:
    parser: the argument parser over the subcommands, and ``main``.
    schedule: ``schedule``, a config's LR schedule as a table and a PNG, without training.
    precision: ``precision``, what AutoPrecision and the optimizer kernel choice would be here.
    machine: the timed reference steps behind ``precision``.
    report: ``report``, a saved bottleneck JSON rendered again.
"""

from lightning_optkit.cli.parser import build_parser, main
from lightning_optkit.cli.schedule import horizon_of

__all__ = ["build_parser", "horizon_of", "main"]
