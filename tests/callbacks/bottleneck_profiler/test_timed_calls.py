"""Timing of ``log`` and of the optimizers' ``step`` installed and removed without a Trainer."""

from __future__ import annotations

from typing import Any

import torch

from lightning_optkit.callbacks.bottleneck_profiler._timed_calls import TimedLog, TimedOptimizers
from lightning_optkit.profiling.accounting import PhaseAccountant


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def _accountant(clock: Clock) -> PhaseAccountant:
    """An accountant inside its first step (what is timed now counts for the run)."""
    acct = PhaseAccountant(clock=clock)
    acct.start("[_TrainingEpochLoop].train_dataloader_next")
    acct.stop("[_TrainingEpochLoop].train_dataloader_next")
    return acct


def _ns(acct: PhaseAccountant, phase: str) -> int:
    return round(acct.phase_seconds().get(phase, 0.0) * 1e9)


class _Module:
    """Stands in for a LightningModule: a ``log`` method, an instance ``__dict__``."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.logged: list[str] = []

    def log(self, name: str, value: Any) -> None:
        self.clock.now += 70
        self.logged.append(name)


def test_log_wrapper_times_each_call_and_is_removed() -> None:
    clock = Clock()
    acct = _accountant(clock)
    module = _Module(clock)
    timed = TimedLog(acct)
    timed.install(module)  # type: ignore[arg-type]
    wrapper = module.__dict__["log"]
    timed.install(module)  # type: ignore[arg-type]  # still in place: not wrapped twice
    assert module.__dict__["log"] is wrapper
    module.log("loss", 1.0)
    module.log("acc", 0.5)
    assert module.logged == ["loss", "acc"] and _ns(acct, "logging") == 140
    timed.remove()
    assert "log" not in module.__dict__


def test_log_set_by_someone_else_after_install_stays() -> None:
    clock = Clock()
    module = _Module(clock)
    timed = TimedLog(_accountant(clock))
    timed.install(module)  # type: ignore[arg-type]

    def theirs(*args: Any) -> None:
        return None

    module.__dict__["log"] = theirs
    timed.remove()
    assert module.__dict__["log"] is theirs


class _Plain:
    """An optimizer that is not a ``torch.optim.Optimizer``: its ``step`` is wrapped on the instance."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def step(self) -> str:
        self.clock.now += 300
        return "stepped"


def test_optimizers_timed_by_hooks_or_wrapper_then_undone() -> None:
    clock = Clock()
    acct = _accountant(clock)
    weight = torch.nn.Parameter(torch.ones(2))
    sgd = torch.optim.SGD([weight], lr=0.1)
    plain = _Plain(clock)
    timing = TimedOptimizers(acct)
    timing.watch([sgd, plain])
    timing.watch([sgd, plain])  # the same optimizers: nothing added
    assert len(sgd._optimizer_step_pre_hooks) == len(sgd._optimizer_step_post_hooks) == 1
    assert "step" not in sgd.__dict__ and "step" in plain.__dict__
    assert plain.step() == "stepped" and _ns(acct, "optimizer_step") == 300
    weight.grad = torch.ones(2)
    sgd.step()
    assert torch.allclose(weight.detach(), torch.full((2,), 0.9))
    timing.undo()
    assert len(sgd._optimizer_step_pre_hooks) == len(sgd._optimizer_step_post_hooks) == 0
    assert "step" not in plain.__dict__
    # an optimizer replaced mid-run is timed when seen
    other = _Plain(clock)
    timing.watch([sgd, other])
    assert "step" in other.__dict__ and len(sgd._optimizer_step_pre_hooks) == 1
    timing.undo()
