"""``AutoPrecision``, the Lightning precision plugin over the pure :mod:`lightning_optkit.precision` core.

* :mod:`~lightning_optkit.plugins.auto_precision.plugin`: ``AutoPrecision``, the Lightning hooks.
* :mod:`~lightning_optkit.plugins.auto_precision.trainer_link`: ``TrainerLink``, what the plugin
  reads from the Trainer and writes back (processes, rank gather, publishing, search phase, metrics).
"""

from __future__ import annotations

from lightning_optkit.plugins.auto_precision.plugin import AutoPrecision

__all__ = ["AutoPrecision"]
