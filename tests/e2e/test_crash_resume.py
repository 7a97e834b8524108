"""A run that crashes mid-warm-up and resumes from its last checkpoint ends like an uninterrupted one."""

from __future__ import annotations

import json

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_optkit import OptKit
from lightning_optkit._trainer import run_notes
from lightning_optkit.demo import DigitsClassifier, DigitsDataModule
from tests.helpers.lr_recorder import CrashAt, LRRecorder

EPOCH = 10  # optimizer steps per epoch (limit_train_batches)


def fit(root, *, arch: str, crash_at: int | None = None, ckpt_path: str | None = None):
    pl.seed_everything(0, verbose=False)
    recorder = LRRecorder()
    kit = OptKit(
        # timing-based choices are pinned so both runs choose alike; the race is loss-based
        optimizer={"mode": "race", "kernel": "for-loop", "budget": 0.3, "max_candidates": 2},
        schedule={"warmup": "40%", "min_lr_ratio": 0.1},
        precision={"probe": False},
        profiler={"dirpath": str(root / "report"), "console": False},
    )
    callbacks = [kit, recorder, ModelCheckpoint(dirpath=root / "ckpt", save_last=True, save_top_k=-1)]
    if crash_at is not None:
        callbacks.append(CrashAt(crash_at))
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=6, limit_train_batches=EPOCH, limit_val_batches=2,
        logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=root,
        callbacks=callbacks, deterministic=True,
    )
    model = DigitsClassifier(arch=arch, optimizer="none", hidden=64)
    try:
        trainer.fit(model, DigitsDataModule(batch_size=32), ckpt_path=ckpt_path)
    except RuntimeError as err:
        assert "planted crash" in str(err)
    return trainer, recorder, model


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_crash_mid_warmup_then_resume_matches_uninterrupted(tmp_path, arch: str) -> None:
    straight, straight_lrs, straight_model = fit(tmp_path / "a", arch=arch)
    crashed, crashed_lrs, _ = fit(tmp_path / "b", arch=arch, crash_at=2 * EPOCH)  # warm-up is 24 steps
    assert crashed.global_step == 2 * EPOCH
    # the crashed run still left its bottleneck report
    report = json.loads((tmp_path / "b" / "report" / "bottlenecks.json").read_text())
    assert report["steps_measured"] > 0
    resumed, resumed_lrs, resumed_model = fit(
        tmp_path / "b", arch=arch, ckpt_path=str(tmp_path / "b" / "ckpt" / "last.ckpt")
    )
    assert resumed.global_step == straight.global_step == 6 * EPOCH
    assert crashed_lrs.records + resumed_lrs.records == straight_lrs.records  # LR trajectory
    a, b = run_notes(straight).decisions, run_notes(resumed).decisions
    assert a["optimizer"]["mode"] == "race" and a["optimizer"]["race"]["winner"]
    for key in ("optimizer", "lr", "kernel", "groups"):
        assert a["optimizer"][key] == b["optimizer"][key], key  # same choice, no new search
    assert a["precision"]["precision"] == b["precision"]["precision"]
    assert type(straight.optimizers[0]) is type(resumed.optimizers[0])
    for pa, pb in zip(straight_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(pa, pb)  # same final weights, bit for bit
