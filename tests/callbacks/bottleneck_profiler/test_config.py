"""BottleneckProfiler from YAML through LightningCLI (``run=False``), and a fit from a config."""

from __future__ import annotations

import glob
import json
import os

import pytest
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.profilers import SimpleProfiler

from lightning_optkit import BottleneckProfiler

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CONFIGS = sorted(glob.glob(os.path.join(REPO, "examples", "configs", "profiler_*.yaml")))


def _cli(args: list[str]) -> LightningCLI:
    return LightningCLI(LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                        run=False, args=args, save_config_kwargs={"overwrite": True})


def test_there_are_profiler_configs() -> None:
    assert [os.path.basename(c) for c in CONFIGS] == ["profiler_basic.yaml", "profiler_deep.yaml"]


@pytest.mark.parametrize("config", CONFIGS, ids=os.path.basename)
def test_config_builds_the_callback(config: str) -> None:
    cli = _cli(["--config", config])
    found = [cb for cb in cli.trainer.callbacks if isinstance(cb, BottleneckProfiler)]
    assert len(found) == 1
    assert found[0].skip_empty_hooks is False
    assert type(cli.model).__name__ == "DigitsClassifier"
    assert type(cli.datamodule).__name__ == "DigitsDataModule"


def test_deep_config_values() -> None:
    cli = _cli(["--config", os.path.join(REPO, "examples", "configs", "profiler_deep.yaml")])
    profiler = next(cb for cb in cli.trainer.callbacks if isinstance(cb, BottleneckProfiler))
    assert (profiler.deep_window_steps, profiler.deep_window_start, profiler.trace) == (3, 20, True)
    assert profiler.formats == ("json", "md", "html") and profiler.log_shares is True
    assert profiler.skip_empty_hooks is False
    assert isinstance(cli.trainer.profiler, SimpleProfiler)


def test_bad_value_in_yaml_names_the_argument(tmp_path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "trainer:\n  callbacks:\n    - class_path: lightning_optkit.BottleneckProfiler\n"
        "      init_args:\n        formats: [json, pdf]\n"
        "model:\n  class_path: lightning_optkit.demo.DigitsClassifier\n"
        "data:\n  class_path: lightning_optkit.demo.DigitsDataModule\n"
    )
    with pytest.raises((SystemExit, ValueError)):
        _cli(["--config", str(config)])


def test_fit_from_config_writes_the_report(tmp_path) -> None:
    pytest.importorskip("sklearn")
    cli = _cli([
        "--config", os.path.join(REPO, "examples", "configs", "profiler_basic.yaml"),
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "6", "--trainer.limit_val_batches", "1",
        "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
        "--trainer.default_root_dir", str(tmp_path),
    ])
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    report = json.loads((tmp_path / "bottlenecks.json").read_text())
    assert report["steps_measured"] == 4
