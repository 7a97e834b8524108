"""AutoOptimizer: the callback (``callback``), its searches at the start of training (``search``)
and the real batches and training steps they run on (``steps``).

Import the callback from ``lightning_optkit``; the decisions themselves live in
:mod:`lightning_optkit.optim`.
"""

from lightning_optkit.callbacks.auto_optimizer.callback import AutoOptimizer

__all__ = ["AutoOptimizer"]
