"""AutoPrecision from YAML through LightningCLI, and the plugin's arguments as jsonargparse sees them."""

from __future__ import annotations

import os
from unittest import mock

import pytest

from lightning_optkit.precision import AutoPrecision
from tests.helpers.precision_models import CPU_AVX2

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "examples", "configs", "precision_auto.yaml")
FP16_CONFIG = os.path.join(REPO, "examples", "configs", "precision_fp16.yaml")


def _cli(args):
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    return LightningCLI(LightningModule, LightningDataModule, subclass_mode_model=True,
                        subclass_mode_data=True, save_config_callback=None, args=args, run=False)


def test_yaml_config_builds_the_plugin(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    from lightning_optkit.demo import DigitsClassifier, DigitsDataModule

    monkeypatch.chdir(tmp_path)
    cli = _cli(["--config", CONFIG])
    plugin = cli.trainer.precision_plugin
    assert isinstance(plugin, AutoPrecision)
    assert plugin.mode == "auto" and plugin.probe and plugin.calibrate and plugin.forensics
    assert plugin.keep_fp32 == ["LayerNorm"]
    assert plugin.scaler_options["init_scale"] == 65536.0 and plugin.scaler_options["hysteresis"] == 2
    assert isinstance(cli.model, DigitsClassifier) and isinstance(cli.datamodule, DigitsDataModule)


def test_yaml_config_trains(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    cli = _cli(["--config", CONFIG, "--trainer.max_steps=4", "--trainer.logger=false",
                "--trainer.enable_checkpointing=false", "--trainer.limit_val_batches=0"])
    with mock.patch("lightning_optkit.precision.plugin.probe_hardware", return_value=CPU_AVX2):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    plugin = cli.trainer.precision_plugin
    assert plugin.decision.precision == "32-true" and cli.trainer.global_step == 4
    # keep_fp32 'LayerNorm' matched the MLP's norm layer (else setup would have raised)


def test_cli_overrides_and_bad_values(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    base = ["--model=lightning_optkit.demo.DigitsClassifier", "--data=lightning_optkit.demo.DigitsDataModule",
            "--trainer.logger=false", "--trainer.plugins=lightning_optkit.AutoPrecision"]
    cli = _cli([*base, "--trainer.plugins.mode=16-mixed", "--trainer.plugins.hysteresis=3",
                "--trainer.plugins.keep_fp32=[net.1, LayerNorm]"])
    plugin = cli.trainer.precision_plugin
    assert plugin.mode == "16-mixed" and plugin.scaler_options["hysteresis"] == 3
    assert plugin.keep_fp32 == ["net.1", "LayerNorm"]
    with pytest.raises(SystemExit):
        _cli([*base, "--trainer.plugins.mode=fp8"])


def test_fp16_yaml_config_trains_with_the_scaler(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    cli = _cli(["--config", FP16_CONFIG, "--trainer.max_steps=3", "--trainer.logger=false",
                "--trainer.enable_checkpointing=false", "--trainer.limit_val_batches=0",
                "--trainer.accelerator=cpu"])
    plugin = cli.trainer.precision_plugin
    assert plugin.mode == "16-mixed" and plugin.scaler_options["growth_interval"] == 1000
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert plugin.decision.precision == "16-mixed" and plugin.calibration is not None
    assert plugin.scaler.stats()["steps"] == 3
