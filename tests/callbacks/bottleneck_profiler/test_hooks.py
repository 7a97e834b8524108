"""BottleneckProfiler(skip_empty_hooks=True): empty per-batch hooks are skipped during the fit, nothing else changes."""

from __future__ import annotations

import ast
import json
import inspect
import textwrap
from collections import Counter
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.profilers import SimpleProfiler

from lightning_optkit import BottleneckProfiler
from lightning_optkit.callbacks.bottleneck_profiler._hooks import EMPTY_HOOKS, HookShadows, quiet_actions
from tests.helpers.models import TinyModel, make_trainer


class _Recorder(SimpleProfiler):
    """Counts every action Lightning enters (the profiler the user set; BottleneckProfiler forwards to it)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered: Counter[str] = Counter()

    def start(self, action_name: str) -> None:
        self.entered[action_name] += 1
        super().start(action_name)


class _Hooked(TinyModel):
    """Overrides one per-batch hook and counts its calls."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(n_loader=48, **kwargs)
        self.after_backward = 0

    def on_after_backward(self) -> None:
        self.after_backward += 1


class _BatchEnd(pl.Callback):
    def __init__(self) -> None:
        self.ends = 0

    def on_train_batch_end(self, *args: Any) -> None:
        self.ends += 1


def _fit(tmp_path, skip: bool, model: pl.LightningModule, **trainer_kwargs: Any) -> tuple[_Recorder, Any]:
    recorder = _Recorder()
    trainer = make_trainer(profiler=recorder, limit_val_batches=2, val_check_interval=3,
                           callbacks=[BottleneckProfiler(dirpath=str(tmp_path), console=False, skip_empty_hooks=skip),
                                      _BatchEnd(), *trainer_kwargs.pop("callbacks", [])], **trainer_kwargs)
    trainer.fit(model)
    return recorder, trainer


def test_empty_hooks_are_skipped_and_overridden_ones_still_run(tmp_path) -> None:
    model = _Hooked()
    recorder, trainer = _fit(tmp_path, True, model)
    entered = recorder.entered
    name = type(model).__name__
    for hook in ("on_before_backward", "on_before_optimizer_step", "on_before_zero_grad", "on_train_batch_end",
                 "configure_gradient_clipping"):
        assert entered[f"[LightningModule]{name}.{hook}"] == 0, hook
    assert entered["[Strategy]SingleDeviceStrategy.on_train_batch_start"] == 0
    assert entered["[Callback]_BatchEnd.on_before_backward"] == 0
    assert entered["[Callback]_BatchEnd.on_validation_batch_end"] == 0
    # overridden hooks still run every step, the module's validation batch hooks are left alone
    assert model.after_backward == 6 and entered[f"[LightningModule]{name}.on_after_backward"] == 6
    assert trainer.callbacks[1].ends == 6 and entered["[Callback]_BatchEnd.on_train_batch_end"] == 6
    assert entered[f"[LightningModule]{name}.on_validation_batch_start"] == 4
    # after the fit, every shadow is gone
    for target in (model, trainer.strategy, *trainer.callbacks):
        assert not [k for k, v in vars(target).items() if k.startswith(("on_", "configure_")) and v is None
                    and not isinstance(target, BottleneckProfiler)]


def test_skip_empty_hooks_off_leaves_lightning_alone(tmp_path) -> None:
    model = _Hooked()
    recorder, _ = _fit(tmp_path, False, model)
    name = type(model).__name__
    assert recorder.entered[f"[LightningModule]{name}.on_before_backward"] == 6
    assert recorder.entered["[Strategy]SingleDeviceStrategy.on_train_batch_start"] == 6


def test_skipping_changes_no_result(tmp_path) -> None:
    weights = []
    for skip in (True, False):
        torch.manual_seed(0)
        model = _Hooked(optimizer="sgd")
        _fit(tmp_path / str(skip), skip, model, gradient_clip_val=0.05)
        weights.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*weights))


def test_clipping_hook_is_kept_when_the_trainer_clips(tmp_path) -> None:
    model = _Hooked()
    recorder, _ = _fit(tmp_path, True, model, gradient_clip_val=0.5)
    assert recorder.entered[f"[LightningModule]{type(model).__name__}.configure_gradient_clipping"] == 6


class _Failing(_Hooked):
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if batch_idx == 3:
            raise RuntimeError("boom")
        return super().training_step(batch, batch_idx)


def test_hooks_are_restored_after_a_failure(tmp_path) -> None:
    model = _Failing()
    with pytest.raises(RuntimeError, match="boom"):
        _fit(tmp_path, True, model)
    assert "on_before_backward" not in vars(model)


def test_hooks_set_on_the_instance_are_left_alone() -> None:
    trainer = make_trainer()
    model = TinyModel()

    def mine() -> None:
        return None

    model.on_before_backward = mine  # type: ignore[method-assign]
    shadows = HookShadows()
    shadows.shadow(trainer, model)
    assert model.on_before_backward is mine and model.on_after_backward is None
    assert (model, "on_after_backward") in shadows.shadowed
    shadows.restore()
    assert model.on_before_backward is mine and "on_after_backward" not in vars(model) and not shadows.shadowed


def _body(base: type, hook: str) -> list[str]:
    source = textwrap.dedent(inspect.getsource(getattr(base, hook)))
    return [type(node).__name__ for node in ast.parse(source).body[0].body]  # type: ignore[attr-defined]


@pytest.mark.parametrize("hook", sorted(EMPTY_HOOKS))
def test_the_listed_hooks_are_empty_in_lightning(hook: str) -> None:
    kind = EMPTY_HOOKS[hook]
    body = _body(pl.LightningModule, hook)
    if kind == "passes_batch":
        assert body[-1] == "Return"  # hands the batch back: quiet, never shadowed
        return
    assert set(body) <= {"Expr", "Pass"}, body  # a docstring, at most a ``pass``
    if kind in ("train_batch", "val_batch"):  # shadowed on the callbacks too
        assert set(_body(pl.Callback, hook)) <= {"Expr", "Pass"}


def test_quiet_actions_are_the_hooks_nobody_overrode() -> None:
    model = _Hooked()
    name = type(model).__name__
    quiet = quiet_actions(make_trainer(), model)
    assert f"[LightningModule]{name}.on_before_backward" in quiet
    assert f"[LightningModule]{name}.transfer_batch_to_device" in quiet
    assert f"[LightningModule]{name}.configure_gradient_clipping" in quiet
    assert f"[LightningModule]{name}.on_after_backward" not in quiet  # overridden: timed by name
    assert f"[LightningModule]{name}.training_step" not in quiet
    assert "[Strategy]SingleDeviceStrategy.on_train_batch_start" in quiet
    clipping = quiet_actions(make_trainer(gradient_clip_val=0.5), model)
    assert f"[LightningModule]{name}.configure_gradient_clipping" not in clipping


class _WrapsAtTrainStart(pl.Callback):
    """Wraps the module's (empty) ``on_after_backward`` at train start, after the profiler's own train start."""

    def __init__(self) -> None:
        self.calls = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        original = pl_module.on_after_backward

        def wrapped() -> None:
            self.calls += 1
            original()

        pl_module.on_after_backward = wrapped  # type: ignore[method-assign]


def test_a_hook_wrapped_at_train_start_wraps_the_real_hook(tmp_path) -> None:
    wrapper = _WrapsAtTrainStart()
    model = TinyModel(n_loader=48)
    _fit(tmp_path, True, model, callbacks=[wrapper])
    assert wrapper.calls == 6


@pytest.mark.parametrize("user_profiler", [False, True])
def test_default_leaves_every_hook_in_place(tmp_path, user_profiler: bool) -> None:
    """Off by default, with or without a profiler of the user's: the run measured is the run as written."""
    model = _Hooked()
    recorder = _Recorder() if user_profiler else None
    seen: list[Any] = []

    class _Peek(pl.Callback):
        def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
            seen.append(vars(pl_module).get("on_before_backward", "method"))

    profiler = BottleneckProfiler(dirpath=str(tmp_path), console=False, formats=["json", "md", "html"])
    assert profiler.skip_empty_hooks is False
    trainer = make_trainer(profiler=recorder, callbacks=[profiler, _Peek()])
    trainer.fit(model)
    assert set(seen) == {"method"}
    assert profiler.report is not None and profiler.report["notes"] == []
    assert "Note:" not in (tmp_path / "bottlenecks.md").read_text()
    assert "skip_empty_hooks" not in (tmp_path / "bottlenecks.html").read_text()
    if recorder is not None:
        assert recorder.entered[f"[LightningModule]{type(model).__name__}.on_before_backward"] == 6


def test_opt_in_is_stated_in_every_report(tmp_path, capsys) -> None:
    model = _Hooked()
    profiler = BottleneckProfiler(dirpath=str(tmp_path), console=True, skip_empty_hooks=True,
                                  formats=["json", "md", "html"])
    make_trainer(callbacks=[profiler, _BatchEnd()]).fit(model)
    # the module's six (on_train_batch_start/end, on_before_zero_grad, on_before_backward, on_before_optimizer_step,
    # configure_gradient_clipping), the strategy's on_train_batch_start, _BatchEnd's seven other batch hooks
    notes = profiler.report["notes"]
    assert len(notes) == 1 and notes[0].startswith("skip_empty_hooks=True: Lightning skipped 14 empty per-batch hook(s)")
    assert "faster than the same run without the profiler" in notes[0]
    assert json.loads((tmp_path / "bottlenecks.json").read_text())["notes"] == notes
    assert f"> **Note:** {notes[0]}" in (tmp_path / "bottlenecks.md").read_text()
    assert "<strong>Note:</strong> skip_empty_hooks=True" in (tmp_path / "bottlenecks.html").read_text()
    assert "skip_empty_hooks=True" in capsys.readouterr().out
