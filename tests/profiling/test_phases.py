"""Lightning action names map to the right exclusive phase."""

from __future__ import annotations

import pytest

from lightning_optkit.profiling.phases import (
    BATCH_MARK,
    CATEGORIES,
    TRANSPARENT,
    ActionClassifier,
    category_of,
)

CKPT = "ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1, 'train_time_interval': None}"


@pytest.mark.parametrize(
    ("name", "phase", "validation"),
    [
        ("[_TrainingEpochLoop].train_dataloader_next", "data_fetch", False),
        ("[Strategy]SingleDeviceStrategy.batch_to_device", "host_to_device", False),
        ("[LightningModule]Net.transfer_batch_to_device", "host_to_device", False),
        ("[Strategy]DDPStrategy.training_step", "forward", False),
        ("[Strategy]DDPStrategy.backward", "backward", False),
        ("[LightningModule]Net.backward", "backward", False),
        ("[LightningModule]Net.optimizer_step", "other", False),
        ("[LightningModule]Net.optimizer_zero_grad", "zero_grad", False),
        ("[LightningModule]Net.configure_gradient_clipping", "optimizer_step", False),
        ("[Callback]EarlyStopping{'monitor': 'val_loss', 'mode': 'min'}.on_train_batch_end",
         "callback:EarlyStopping.on_train_batch_end", False),
        ("[Callback]Slow.on_validation_batch_end", "callback:Slow.on_validation_batch_end", True),
        (f"[Callback]{CKPT}.on_train_batch_end", "checkpoint", False),
        (f"[Callback]{CKPT}.on_validation_end", "checkpoint", True),
        ("[Callback]Any.on_save_checkpoint", "checkpoint", False),
        ("[Callback]BottleneckProfiler.on_train_batch_end", "profiler", False),
        ("[LightningModule]Net.on_train_batch_start", "hook:Net.on_train_batch_start", False),
        ("[LightningModule]Net.on_validation_model_eval", "validation", True),
        ("[Strategy]SingleDeviceStrategy.validation_step", "validation", True),
        ("[_EvaluationLoop].val_next", "validation", True),
        ("[LightningDataModule]Digits.val_dataloader", "validation", True),
        ("save_checkpoint", "checkpoint", False),
        ("something else", "other", False),
    ],
)
def test_classify(name: str, phase: str, validation: bool) -> None:
    classifier = ActionClassifier(checkpoint_keys=frozenset({CKPT}), own_key="BottleneckProfiler")
    found = classifier.classify(name)
    assert (found.phase, found.validation, found.code) == (phase, validation, 0)


def test_containers_are_transparent() -> None:
    classifier = ActionClassifier()
    assert classifier.classify("run_training_epoch").code == TRANSPARENT
    assert classifier.classify("run_training_batch").code == BATCH_MARK


@pytest.mark.parametrize(
    ("phase", "category"),
    [("forward", "forward"), ("callback:X.y", "callbacks"), ("hook:M.on_fit_start", "callbacks"),
     ("profiler", "callbacks"), ("gc", "other"), ("search:x", "excluded"), ("logging", "logging")],
)
def test_categories(phase: str, category: str) -> None:
    assert CATEGORIES[category_of(phase)] == category
