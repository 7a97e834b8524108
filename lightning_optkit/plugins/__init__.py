"""Lightning plugins (glue over the pure cores): ``AutoPrecision``, the precision plugin.

Lightning keeps its precision plugins in ``lightning.pytorch.plugins``; this package does the same.
``from lightning_optkit import AutoPrecision`` stays the short, lazy way in.
"""

from __future__ import annotations

from lightning_optkit.plugins.auto_precision import AutoPrecision

__all__ = ["AutoPrecision"]
