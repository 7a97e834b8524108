"""What the hardware can do for mixed precision, read once per run into plain values.

The facts come from capability queries (CUDA compute capability, the CPU's vector extensions),
never from ``torch.cuda.is_bf16_supported()`` alone: that function also counts emulated bf16,
which runs but is slow.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

__all__ = ["HardwareFacts", "cpu_flags", "probe_hardware"]

_CPUINFO = "/proc/cpuinfo"


@dataclass(frozen=True)
class HardwareFacts:
    """Plain facts about one device, enough to decide a precision.

    Attributes:
        device_type: ``"cuda"``, ``"cpu"``, ``"mps"``, ``"xla"`` or another accelerator's name.
        device_name: A human-readable name of the device.
        cuda_capability: ``(major, minor)`` compute capability of a CUDA device, else ``None``.
        cpu_capability: The vector extension torch dispatches to (``"AVX2"``, ``"AVX512"``, ...).
        cpu_bf16_native: The CPU computes bf16 natively (AVX512-BF16 or AMX-BF16, ARM BF16).
        cpu_fp16_native: The CPU computes fp16 natively (AVX512-FP16 or AMX-FP16).
        cpu_amx: The CPU has AMX tiles (large bf16 matmul speed-ups).
        bf16_runs: bf16 autocast runs at all on the device (natively or emulated).
        fp16_runs: fp16 autocast runs at all on the device.
    """

    device_type: str = "cpu"
    device_name: str = "cpu"
    cuda_capability: tuple[int, int] | None = None
    cpu_capability: str | None = None
    cpu_bf16_native: bool = False
    cpu_fp16_native: bool = False
    cpu_amx: bool = False
    bf16_runs: bool = True
    fp16_runs: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def native_bf16(self) -> bool:
        """bf16 is computed natively (not emulated) on this device."""
        if self.device_type == "cuda":
            return self.cuda_capability is not None and self.cuda_capability >= (8, 0)
        if self.device_type == "cpu":
            return self.cpu_bf16_native
        return False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        out = asdict(self)
        out["cuda_capability"] = None if self.cuda_capability is None else list(self.cuda_capability)
        out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HardwareFacts:
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        cap = known.get("cuda_capability")
        known["cuda_capability"] = None if cap is None else (int(cap[0]), int(cap[1]))
        known["notes"] = tuple(known.get("notes", ()))
        return cls(**known)


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags from ``/proc/cpuinfo`` (empty where the file does not exist)."""
    try:
        with open(_CPUINFO, encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def _mkldnn_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - depends on the build
        return False


def _cpu_facts() -> HardwareFacts:
    capability = torch.backends.cpu.get_cpu_capability()
    flags = cpu_flags()
    notes: list[str] = []
    if flags:
        amx = "amx_bf16" in flags
        bf16 = amx or "avx512_bf16" in flags or "bf16" in flags  # "bf16": ARMv8.6 feature name
        fp16 = "avx512_fp16" in flags or "amx_fp16" in flags
    else:
        # No flag list (macOS, Windows): trust oneDNN's bf16 support only on AVX512-class CPUs.
        amx = False
        bf16 = capability.upper().startswith("AVX512") and _mkldnn_bf16()
        fp16 = False
        notes.append("CPU flags unavailable; bf16 support inferred from oneDNN")
    name = platform.processor() or platform.machine() or "cpu"
    return HardwareFacts(
        device_type="cpu",
        device_name=name,
        cpu_capability=capability,
        cpu_bf16_native=bf16,
        cpu_fp16_native=fp16,
        cpu_amx=amx,
        bf16_runs=True,
        fp16_runs=bool(torch.amp.is_autocast_available("cpu")),
        notes=tuple(notes),
    )


def _cuda_facts(index: int) -> HardwareFacts:
    major, minor = torch.cuda.get_device_capability(index)
    try:
        name = torch.cuda.get_device_name(index)
    except Exception:  # noqa: BLE001  - a mocked capability has no name to read
        name = f"cuda:{index}"
    return HardwareFacts(
        device_type="cuda",
        device_name=name,
        cuda_capability=(int(major), int(minor)),
        # Emulated bf16 runs on 6.x/7.x devices, slowly; fp16 arithmetic needs 5.3 or newer.
        bf16_runs=(major, minor) >= (6, 0),
        fp16_runs=(major, minor) >= (5, 3),
    )


def probe_hardware(device: torch.device | str = "cpu") -> HardwareFacts:
    """Read the facts of ``device`` (queries only; nothing is allocated on it).

    Args:
        device: The device training runs on, such as ``"cpu"``, ``"cuda:0"`` or a ``torch.device``.

    Returns:
        The :class:`HardwareFacts` of that device.
    """
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={str(device)!r} is a CUDA device but CUDA is not available")
        return _cuda_facts(device.index if device.index is not None else torch.cuda.current_device())
    if device.type == "cpu":
        return _cpu_facts()
    runs = bool(torch.amp.is_autocast_available(device.type))
    return HardwareFacts(
        device_type=device.type,
        device_name=str(device),
        bf16_runs=runs,
        fp16_runs=runs and device.type != "xla",
    )
