"""OptKit: the four components in one line, each configurable or switched off."""

from __future__ import annotations

import json

import pytest
import torch
from lightning.pytorch.plugins import MixedPrecision

from lightning_optkit import AutoOptimizer, AutoPrecision, BottleneckProfiler, OptKit, WarmupDecay
from lightning_optkit._trainer import run_notes
from tests.helpers.models import TinyModel, make_trainer


class NoOptimizer(TinyModel):
    def configure_optimizers(self):
        return None


def test_all_parts_installed_and_decisions_recorded(tmp_path) -> None:
    kit = OptKit(profiler={"dirpath": str(tmp_path), "console": False})
    trainer = make_trainer(max_epochs=5, callbacks=[kit], default_root_dir=tmp_path)
    trainer.fit(NoOptimizer())
    kinds = [type(c) for c in trainer.callbacks]
    assert kinds[:4] == [OptKit, BottleneckProfiler, AutoOptimizer, WarmupDecay]
    assert trainer.precision_plugin is kit.precision_plugin
    assert isinstance(trainer.precision_plugin, AutoPrecision)
    decisions = run_notes(trainer).decisions
    assert {"optimizer", "schedule", "precision"} <= set(decisions)
    # the schedule's peak is the chosen optimizer's LR
    chosen_lr = trainer.optimizers[0].param_groups[0]["initial_lr"]
    assert decisions["schedule"]["groups"][0]["peak_lr"] == chosen_lr
    report = json.loads((tmp_path / "bottlenecks.json").read_text())
    assert {"optimizer", "schedule", "precision"} <= set(report["decisions"])


def test_parts_can_be_switched_off_and_configured(tmp_path) -> None:
    kit = OptKit(optimizer=False, precision=False, profiler=False, schedule={"warmup": 2, "decay": "linear"})
    trainer = make_trainer(max_epochs=1, callbacks=[kit])
    trainer.fit(TinyModel())
    assert [type(c) for c in trainer.callbacks][:2] == [OptKit, WarmupDecay]
    assert not any(isinstance(c, (AutoOptimizer, BottleneckProfiler)) for c in trainer.callbacks)
    assert type(trainer.precision_plugin).__name__ == "Precision"
    assert kit.parts["schedule"]._driven[0].warmups == [2, 2]


def test_users_own_precision_plugin_is_kept() -> None:
    plugin = MixedPrecision("bf16-mixed", "cpu")
    kit = OptKit(optimizer=False, profiler=False)
    trainer = make_trainer(max_epochs=1, callbacks=[kit], plugins=[plugin])
    trainer.fit(TinyModel())
    assert trainer.precision_plugin is plugin
    assert "kept the Trainer's own precision plugin" in run_notes(trainer).decisions["precision"]["summary"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(schedule="cosine"), r"schedule='cosine' is not allowed: expected true .*, false .* or a dict"),
        (dict(schedule={"warmup": -1}), r"warmup=-1 is negative"),
        (dict(optimizer={"no_such_arg": 1}), r"optimizer=.*no_such_arg"),
    ],
)
def test_bad_parts_fail_at_construction(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        OptKit(**kwargs)


def test_summary_printed_once(monkeypatch) -> None:
    import lightning_optkit.callbacks.optkit as optkit_module

    printed: list[str] = []
    monkeypatch.setattr(optkit_module, "rank_zero_info", printed.append)
    kit = OptKit(profiler=False, precision=False, schedule={"decay": "linear", "warmup": 2})
    trainer = make_trainer(max_epochs=1, callbacks=[kit])
    trainer.fit(NoOptimizer())
    assert len(printed) == 1
    assert ": linear decay, peak " in printed[0] and "linear warm-up 2 of " in printed[0]
    assert printed[0].startswith("lightning_optkit decisions")
    assert "optimizer:" in printed[0] and "schedule:" in printed[0]
    assert isinstance(trainer.optimizers[0], torch.optim.Optimizer)


def test_iterable_data_with_max_epochs_names_optkits_default_warmup() -> None:
    from lightning.pytorch.utilities.exceptions import MisconfigurationException
    from torch.utils.data import DataLoader, IterableDataset

    from tests.helpers.models import TinyModel

    class Stream(IterableDataset):
        def __iter__(self):
            for _ in range(6):
                yield torch.randn(16), torch.randn(1)

    class StreamModel(TinyModel):
        def train_dataloader(self) -> DataLoader:
            return DataLoader(Stream(), batch_size=2)

    kit = OptKit(optimizer=False, precision=False, profiler=False)
    trainer = make_trainer(max_epochs=2, callbacks=[kit])
    with pytest.raises(MisconfigurationException) as info:
        trainer.fit(StreamModel())
    text = str(info.value)
    assert "group 'pg1': the warm-up 5% is OptKit's default, a share of the run's length" in text
    assert "Trainer(max_steps=...)" in text and "OptKit(schedule={'warmup': 500})" in text
    # the user's own share is not called a default
    kit = OptKit(optimizer=False, precision=False, profiler=False, schedule={"warmup": "10%"})
    with pytest.raises(MisconfigurationException) as info:
        make_trainer(max_epochs=2, callbacks=[kit]).fit(StreamModel())
    assert "warmup=10% is a share" in str(info.value) and "default" not in str(info.value)
