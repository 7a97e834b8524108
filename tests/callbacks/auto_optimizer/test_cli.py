"""AutoOptimizer from LightningCLI YAML: every examples/configs/optimizer_*.yaml loads and fits."""

from __future__ import annotations

import glob
import os

import pytest
import torch
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

from lightning_optkit import AutoOptimizer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CONFIGS = sorted(glob.glob(os.path.join(REPO, "examples", "configs", "optimizer_*.yaml")))


def _cli(config: str, *extra: str) -> LightningCLI:
    return LightningCLI(
        LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
        run=False, save_config_callback=None,
        args=["--config", config, "--trainer.logger", "false", "--trainer.max_epochs", "2",
              "--trainer.enable_checkpointing", "false", *extra])


def test_configs_exist() -> None:
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize("config", CONFIGS, ids=os.path.basename)
def test_config_builds_the_callback(config: str) -> None:
    cli = _cli(config)
    callbacks = [c for c in cli.trainer.callbacks if isinstance(c, AutoOptimizer)]
    assert len(callbacks) == 1
    assert type(cli.model).__name__ == "DigitsClassifier"
    assert type(cli.datamodule).__name__ == "DigitsDataModule"


@pytest.mark.parametrize("config", CONFIGS, ids=os.path.basename)
def test_config_fits(config: str, tmp_path) -> None:
    cli = _cli(config, "--trainer.default_root_dir", str(tmp_path), "--trainer.limit_val_batches", "0")
    cb = next(c for c in cli.trainer.callbacks if isinstance(c, AutoOptimizer))
    cli.trainer.fit(cli.model, cli.datamodule)
    assert cb.choice is not None
    opt = cli.trainer.optimizers[0]
    if cb.explain_only:
        assert isinstance(opt, torch.optim.AdamW) and "lr_mult" not in opt.param_groups[0]
        assert cb.choice.optimizer == "sgd"  # what it would have chosen for the CNN
    else:
        assert {g["name"] for g in opt.param_groups} >= {"decay", "no_decay"}
        assert (tmp_path / "auto_optimizer.json").exists()


def test_race_config_values_reach_the_callback() -> None:
    cli = _cli(os.path.join(REPO, "examples", "configs", "optimizer_race.yaml"))
    cb = next(c for c in cli.trainer.callbacks if isinstance(c, AutoOptimizer))
    settings = cb.settings
    assert settings.mode == "race" and settings.candidates == ("adamw", "sgd", "nadamw")
    assert settings.budget == 40


def test_bad_yaml_value_fails_before_training(tmp_path) -> None:
    with pytest.raises((SystemExit, ValueError)):
        _cli(os.path.join(REPO, "examples", "configs", "optimizer_auto.yaml"),
             "--trainer.callbacks.init_args.mode", "fastest")
