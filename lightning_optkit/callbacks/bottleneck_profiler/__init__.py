"""``BottleneckProfiler`` and the Lightning glue it needs (the diagnosis itself is :mod:`lightning_optkit.profiling`).

* ``callback``: the public callback: reads the Trainer, feeds the accountant, writes the report.
* ``_phase_profiler``: the Lightning ``Profiler`` put on the Trainer for the fit (times every action, forwards).
* ``_hooks``: Lightning's empty hooks: the quiet actions and the ``None`` shadows that let Lightning skip them.
* ``_timed_calls``: timing of ``LightningModule.log`` and of each optimizer's ``step``.
* ``_probes``: the deep ``torch.profiler`` window and the FLOP count.
* ``_samples``: the periodic memory and batch-size samples.
* ``_report``: the report's facts read from the Trainer, handed to the pure core.
"""

from lightning_optkit.callbacks.bottleneck_profiler.callback import BottleneckProfiler

__all__ = ["BottleneckProfiler"]
