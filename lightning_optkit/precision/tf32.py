"""The TF32 policy: fp32 matrix products on Ampere and newer GPUs.

``32-true`` in PyTorch runs matrix products at ``float32_matmul_precision="highest"`` (IEEE fp32)
while cuDNN convolutions already use TF32. On CUDA capability >= 8.0, AutoPrecision lets the fp32
work of a run (the fp32 reference of the probe, a ``32-true`` choice, ``keep_fp32`` islands) use
TF32 matrix products (``"high"``), unless the user asks for strict fp32 or already set the matmul
precision. Strict fp32 also turns cuDNN's TF32 off for the run. Both are put back after the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lightning_optkit.precision.hardware import HardwareFacts

__all__ = ["Float32Policy", "tf32_rule"]


def tf32_rule(facts: HardwareFacts, *, strict_fp32: bool, matmul_precision: str) -> tuple[str | None, str]:
    """What fp32 matrix products should run as.

    Args:
        facts: What the device can do.
        strict_fp32: The user asked for IEEE fp32 matrix products.
        matmul_precision: ``torch.get_float32_matmul_precision()`` before the run.

    Returns:
        ``(setting, reason)``: ``"tf32"``, ``"strict"`` or ``None`` (change nothing), and the
        sentence the decision carries (empty where TF32 does not exist).
    """
    cap = facts.cuda_capability
    if facts.device_type != "cuda" or cap is None or cap < (8, 0):
        return None, ""
    where = f"capability {cap[0]}.{cap[1]}"
    if strict_fp32:
        return "strict", f"strict_fp32=True: fp32 matrix products and convolutions stay IEEE fp32 on {where}"
    if matmul_precision != "highest":
        return None, f"fp32 matrix products: float32_matmul_precision={matmul_precision!r} was set by the user, kept"
    return "tf32", (f"fp32 matrix products use TF32 on {where} (float32_matmul_precision='high'); "
                    "strict_fp32=True keeps IEEE fp32")


@dataclass
class Float32Policy:
    """Applies :func:`tf32_rule`'s setting for one run and puts the previous one back."""

    strict_fp32: bool = False
    setting: str | None = None
    _saved: tuple[str, bool] | None = field(default=None, repr=False)

    def apply(self, facts: HardwareFacts) -> str:
        """Set the run's fp32 matrix-product precision; returns the reason for the decision."""
        self.restore()
        self.setting, reason = tf32_rule(facts, strict_fp32=self.strict_fp32,
                                         matmul_precision=torch.get_float32_matmul_precision())
        if self.setting is not None:
            self._saved = (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)
            torch.set_float32_matmul_precision("highest" if self.setting == "strict" else "high")
            if self.setting == "strict":
                torch.backends.cudnn.allow_tf32 = False
        return reason

    def restore(self) -> None:
        """Put back what :meth:`apply` changed (nothing if it changed nothing)."""
        if self._saved is not None:
            precision, cudnn = self._saved
            torch.set_float32_matmul_precision(precision)
            torch.backends.cudnn.allow_tf32 = cudnn
            self._saved = None
