"""AutoPrecision from YAML through LightningCLI: the option groups arrive as nested mappings
(``scaler``, ``probe_plan``, ``fallback_policy``) and reach the scaler, the probe and the ladder."""

from __future__ import annotations

import os
from unittest import mock

import pytest

from lightning_optkit.precision import AutoPrecision, FallbackPolicy, ProbePlan, ScalerConfig
from tests.helpers.precision_models import CPU_AVX2, cuda_facts

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CONFIG = os.path.join(REPO, "examples", "configs", "precision_auto.yaml")
FP16_CONFIG = os.path.join(REPO, "examples", "configs", "precision_fp16.yaml")
HW = "lightning_optkit.plugins.auto_precision.plugin.probe_hardware"


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
    assert plugin.scaler_config == ScalerConfig(init_scale=65536.0, hysteresis=2, min_scale=1.0)
    assert plugin.probe_plan == ProbePlan(warmup_steps=2, steps=6, rounds=2, margin=0.03)
    assert plugin.controller.plan is plugin.probe_plan
    assert isinstance(cli.model, DigitsClassifier) and isinstance(cli.datamodule, DigitsDataModule)


def test_yaml_config_trains(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    cli = _cli(["--config", CONFIG, "--trainer.max_steps=4", "--trainer.logger=false",
                "--trainer.enable_checkpointing=false", "--trainer.limit_val_batches=0"])
    with mock.patch(HW, return_value=CPU_AVX2):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    plugin = cli.trainer.precision_plugin
    assert plugin.decision.precision == "32-true" and cli.trainer.global_step == 4
    # keep_fp32 'LayerNorm' matched the MLP's norm layer (else setup would have raised)


def test_auto_yaml_values_reach_the_scaler_an_fp16_rule_builds(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    cli = _cli(["--config", CONFIG, "--trainer.max_steps=2", "--trainer.logger=false",
                "--trainer.enable_checkpointing=false", "--trainer.limit_val_batches=0",
                "--trainer.plugins.init_args.probe=false", "--trainer.plugins.init_args.scaler.hysteresis=3"])
    with mock.patch(HW, return_value=cuda_facts(7, 5)):  # a T4-class rank: the rule picks fp16
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    plugin = cli.trainer.precision_plugin
    assert plugin.decision.precision == "16-mixed"
    scaler = plugin.scaler
    assert scaler.config == ScalerConfig(init_scale=65536.0, hysteresis=3, min_scale=1.0)
    assert (scaler.hysteresis, scaler.min_scale, scaler.max_scale) == (3, 1.0, 2.0**24)


def test_cli_overrides_and_bad_values(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    base = ["--model=lightning_optkit.demo.DigitsClassifier", "--data=lightning_optkit.demo.DigitsDataModule",
            "--trainer.logger=false", "--trainer.plugins=lightning_optkit.AutoPrecision"]
    cli = _cli([*base, "--trainer.plugins.mode=16-mixed", "--trainer.plugins.scaler.hysteresis=3",
                "--trainer.plugins.fallback_policy.patience=7", "--trainer.plugins.keep_fp32=[net.1, LayerNorm]"])
    plugin = cli.trainer.precision_plugin
    assert plugin.mode == "16-mixed" and plugin.scaler.hysteresis == 3
    assert plugin.fallback_policy == FallbackPolicy(patience=7)
    assert plugin.keep_fp32 == ["net.1", "LayerNorm"]
    with pytest.raises(SystemExit):
        _cli([*base, "--trainer.plugins.mode=fp8"])
    with pytest.raises(ValueError, match=r"scaler.hysteresis=0 is not allowed"):
        _cli([*base, "--trainer.plugins.mode=16-mixed", "--trainer.plugins.scaler.hysteresis=0"])


def test_fp16_yaml_values_reach_the_scaler_and_the_ladder(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    cli = _cli(["--config", FP16_CONFIG, "--trainer.max_steps=3", "--trainer.logger=false",
                "--trainer.enable_checkpointing=false", "--trainer.limit_val_batches=0",
                "--trainer.accelerator=cpu"])
    plugin = cli.trainer.precision_plugin
    expected = ScalerConfig(init_scale=65536.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=1000,
                            hysteresis=2, min_scale=1.0, max_scale=16777216.0)
    assert plugin.mode == "16-mixed" and plugin.scaler.config == expected
    scaler = plugin.scaler
    assert (scaler.get_growth_interval(), scaler.get_growth_factor(), scaler.get_backoff_factor()) == (1000, 2.0, 0.5)
    assert plugin.fallback_policy == FallbackPolicy(patience=20, skip_rate=0.5, window=100)
    assert plugin.controller._collapse.policy is plugin.fallback_policy
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert plugin.decision.precision == "16-mixed" and plugin.calibration is not None
    assert plugin.scaler.stats()["steps"] == 3
