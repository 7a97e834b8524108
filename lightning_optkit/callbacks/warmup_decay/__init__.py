"""``WarmupDecay``, the Lightning glue of :mod:`lightning_optkit.schedules`.

Modules:
    callback: the ``WarmupDecay`` callback (reads the Trainer, writes the LRs through ``driven``).
    driven: ``DrivenOptimizer``, one driven optimizer's groups, counters and written LRs.
    report: the start-of-fit table, the fit-start traps and the LR history for the plot.
"""

from lightning_optkit.callbacks.warmup_decay.callback import WarmupDecay

__all__ = ["WarmupDecay"]
