"""Overflow forensics: which module's output or gradient became non-finite, which parameters.

Nothing is hooked while steps are clean. After a skipped step the plugin *arms* an
:class:`OverflowTracer` on the model for the following steps: forward hooks record, per module
call, whether its output is finite, and a tensor hook on each output records whether the gradient
flowing into it is finite. The flags stay on the device until the step's backward is done; then one
read turns them into an :class:`OverflowReport` (pure: :func:`diagnose`). The tracer disarms after
it caught an overflow or after ``max_steps`` clean armed steps. A one-off overflow is therefore
counted but only dissected if it happens again while armed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["OverflowReport", "OverflowTracer", "OverflowWatch", "diagnose"]


@dataclass
class OverflowReport:
    """Where an overflow started.

    Attributes:
        step: The global step of the dissected (skipped) step.
        forward_module: The first module (in execution order) whose forward output was non-finite.
        forward_type: Its class name.
        backward_module: The first module (in backward order, from the loss) whose output gradient
            was non-finite.
        backward_type: Its class name.
        nonfinite_params: Parameters whose gradient was non-finite.
        suggestion: What to change.
    """

    step: int = -1
    forward_module: str | None = None
    forward_type: str | None = None
    backward_module: str | None = None
    backward_type: str | None = None
    nonfinite_params: list[str] = field(default_factory=list)
    suggestion: str = ""

    @property
    def culprit(self) -> str | None:
        """The module to keep in fp32: the forward culprit if any, else the backward one."""
        return self.forward_module if self.forward_module is not None else self.backward_module

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        return asdict(self)

    def message(self) -> str:
        """One paragraph for a warning."""
        parts = [f"overflow at step {self.step}:"]
        if self.forward_module is not None:
            parts.append(f"forward output of '{self.forward_module}' ({self.forward_type}) is non-finite;")
        if self.backward_module is not None:
            parts.append(f"gradient into '{self.backward_module}' ({self.backward_type}) is non-finite;")
        if self.nonfinite_params:
            shown = ", ".join(self.nonfinite_params[:5])
            more = f" (+{len(self.nonfinite_params) - 5} more)" if len(self.nonfinite_params) > 5 else ""
            parts.append(f"non-finite gradients in {shown}{more}.")
        parts.append(self.suggestion)
        return " ".join(parts)


def diagnose(
    forward: Sequence[tuple[str, str, bool]],
    backward: Sequence[tuple[str, str, bool]],
    params: Sequence[tuple[str, bool]],
    step: int = -1,
) -> OverflowReport | None:
    """Name the origin of an overflow from plain finiteness records.

    Args:
        forward: ``(module name, class name, output finite)`` in forward execution order.
        backward: ``(module name, class name, output gradient finite)`` in backward order.
        params: ``(parameter name, gradient finite)``.
        step: The step the records belong to.

    Returns:
        A report, or ``None`` when every record is finite.
    """
    fwd = next(((n, t) for n, t, ok in forward if not ok), None)
    bwd = next(((n, t) for n, t, ok in backward if not ok), None)
    bad = [n for n, ok in params if not ok]
    if fwd is None and bwd is None and not bad:
        return None
    report = OverflowReport(step=step, nonfinite_params=bad)
    if fwd is not None:
        report.forward_module, report.forward_type = fwd
    if bwd is not None:
        report.backward_module, report.backward_type = bwd
    culprit = report.culprit
    if culprit:
        report.suggestion = (f"Keep it in fp32: AutoPrecision(keep_fp32=[{culprit!r}]) "
                             f"(or the type {report.forward_type or report.backward_type!r}).")
    else:
        report.suggestion = "Only parameter gradients overflowed: lower init_scale or max_scale."
    return report


def _finite_flag(value: Any) -> torch.Tensor | None:
    tensors = [value] if isinstance(value, torch.Tensor) else (
        [v for v in value if isinstance(v, torch.Tensor)] if isinstance(value, (tuple, list)) else [])
    flags = [torch.isfinite(t).all() for t in tensors if t.is_floating_point()]
    if not flags:
        return None
    return torch.stack(flags).all() if len(flags) > 1 else flags[0]


class OverflowTracer:
    """Finiteness hooks on every named submodule of a model, installed only while armed.

    Args:
        model: The model whose submodules are traced (the root module itself is skipped).
        max_steps: Armed steps without an overflow before the tracer gives up and disarms.
    """

    def __init__(self, model: nn.Module, max_steps: int = 20) -> None:
        self.model = model
        self.max_steps = max_steps
        self.armed_steps = 0
        self._handles: list[Any] = []
        self._forward: list[tuple[str, str, torch.Tensor]] = []
        self._backward: list[tuple[str, str, torch.Tensor]] = []

    @property
    def armed(self) -> bool:
        """Hooks are installed."""
        return bool(self._handles)

    def arm(self) -> None:
        """Install the hooks (no-op when already armed)."""
        if self.armed:
            return
        self.armed_steps = 0
        for name, module in self.model.named_modules():
            if name:
                self._handles.append(module.register_forward_hook(self._make_hook(name, module)))

    def disarm(self) -> None:
        """Remove every hook and drop the records."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.reset()

    def reset(self) -> None:
        """Drop the records of the current step."""
        self._forward.clear()
        self._backward.clear()

    def _make_hook(self, name: str, module: nn.Module) -> Any:
        kind = type(module).__name__

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            flag = _finite_flag(output)
            if flag is None:
                return
            self._forward.append((name, kind, flag))
            outputs = [output] if isinstance(output, torch.Tensor) else list(output)
            for tensor in outputs:
                if isinstance(tensor, torch.Tensor) and tensor.requires_grad:
                    tensor.register_hook(lambda grad: self._backward.append(
                        (name, kind, torch.isfinite(grad).all())) if grad is not None else None)

        return hook

    def collect(self, named_params: Iterable[tuple[str, nn.Parameter]], step: int) -> OverflowReport | None:
        """Read this step's records (one device read) and diagnose them; counts an armed step."""
        params = [(n, p.grad) for n, p in named_params if p.grad is not None]
        flags = [f for _, _, f in self._forward] + [f for _, _, f in self._backward]
        flags += [torch.isfinite(g).all() for _, g in params]
        values = torch.stack([f.to("cpu") for f in flags]).tolist() if flags else []
        n_fwd, n_bwd = len(self._forward), len(self._backward)
        report = diagnose(
            [(n, t, bool(v)) for (n, t, _), v in zip(self._forward, values[:n_fwd])],
            [(n, t, bool(v)) for (n, t, _), v in zip(self._backward, values[n_fwd:n_fwd + n_bwd])],
            [(n, bool(v)) for (n, _), v in zip(params, values[n_fwd + n_bwd:])],
            step=step,
        )
        self.reset()
        self.armed_steps += 1
        return report

    @property
    def exhausted(self) -> bool:
        """The tracer was armed for ``max_steps`` steps without catching an overflow."""
        return self.armed_steps >= self.max_steps


class OverflowWatch:
    """When to trace a model and what the traces found, over a whole run.

    Fed the scaler's skip counter, it arms an :class:`OverflowTracer` after each new skipped step
    (not during a cool-down after a report) and keeps the first ``max_reports`` reports as dicts.

    Args:
        max_reports: Reports kept (later ones are still warned about).
        cooldown: Observed steps after a report before the tracer may arm again.
    """

    def __init__(self, max_reports: int = 20, cooldown: int = 100) -> None:
        self.max_reports = max_reports
        self.cooldown = cooldown
        self.reports: list[dict[str, Any]] = []
        self._tracer: OverflowTracer | None = None
        self._seen_skips = 0
        self._wait = 0

    @property
    def armed(self) -> bool:
        """Hooks are installed: the current step is traced."""
        return self._tracer is not None and self._tracer.armed

    def observe(self, model: nn.Module, skipped_steps: int) -> None:
        """Arm the tracer on ``model`` if a step was skipped since the last call."""
        if self._tracer is None:
            self._tracer = OverflowTracer(model)
        self._wait = max(0, self._wait - 1)
        if skipped_steps > self._seen_skips and not self._tracer.armed and self._wait == 0:
            self._tracer.arm()
        self._seen_skips = skipped_steps

    def collect(self, named_params: Iterable[tuple[str, nn.Parameter]], step: int) -> OverflowReport | None:
        """Read the armed step's records; on a report, keep it, disarm and cool down."""
        tracer = self._tracer
        if tracer is None or not tracer.armed:
            return None
        report = tracer.collect(named_params, step=step)
        if report is not None:
            if len(self.reports) < self.max_reports:
                self.reports.append(report.to_dict())
            tracer.disarm()
            self._wait = self.cooldown
        elif tracer.exhausted:
            tracer.disarm()
        return report

    def disarm(self) -> None:
        """Remove the hooks (a precision without loss scaling, the end of the run)."""
        if self._tracer is not None:
            self._tracer.disarm()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tracer": None}  # hooks and device flags stay with the process
