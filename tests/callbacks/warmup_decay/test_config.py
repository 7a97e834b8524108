"""WarmupDecay: bad settings fail before training, traps warn at fit start, preview, YAML configs."""

from __future__ import annotations

import glob
import os
import pickle

import pytest
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader, IterableDataset

from lightning_optkit import WarmupDecay
from lightning_optkit.schedules import build_schedule
from tests.helpers.models import TinyModel, make_trainer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(warmup=-1), r"warmup=-1 is negative"),
        (dict(warmup=1.5), r"warmup=1.5 is a float >= 1"),
        (dict(warmup=10.0), r"write the int 10"),
        (dict(warmup="five"), r"warmup='five' does not parse"),
        (dict(warmup="2.5st"), r"steps must be a whole number"),
        (dict(warmup=True), r"warmup=True is not a duration"),
        (dict(total=0), r"total=0 is not allowed: expected at least 1 optimizer step"),
        (dict(total="7xx"), r"total='7xx' does not parse"),
        (dict(warmup=11, total=10), r"warmup='11st' is not allowed: it is 11 steps, and the warm-up must be shorter than the schedule's 10 steps"),
        (dict(decay="cosine_annealing"), r"cosine_restarts"),
        (dict(warmup_shape="log"), r"warmup_shape='log'.*linear"),
        (dict(min_lr_ratio=1.5), r"min_lr_ratio=1.5 is not allowed: expected a finite number in \[0.0, 1.0\]"),
        (dict(min_lr_ratio=-0.1), r"min_lr_ratio=-0.1"),
        (dict(warmup_start=2.0), r"warmup_start=2.0 is not allowed: expected a finite number in \[0.0, 1.0\]"),
        (dict(compat="keras"), r"compat='keras' is not one of"),
        (dict(options={"power": -1}, decay="polynomial"), r"power"),
        (dict(options={"num_cycle": 2}), r"num_cycle"),
        (dict(groups={"pg1": {"lr": 0.1}}), r"groups\['pg1'\] has unknown keys \['lr'\]"),
        (dict(groups={"pg1": {"warmup": -3}}), r"groups\['pg1'\]\.warmup=-3 is negative"),
        (dict(count="skipped"), r"count='skipped' is not one of"),
        (dict(horizon_change="grow"), r"horizon_change='grow' is not one of"),
        (dict(optimizers=[-1]), r"optimizers\[0\]=-1"),
        (dict(logging_interval=0), r"logging_interval=0 is not allowed: expected an integer >= 1"),
        (dict(late_group_warmup="x"), r"late_group_warmup='x' does not parse"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        WarmupDecay(**kwargs)


class Endless(IterableDataset):
    def __iter__(self):
        generator = torch.Generator().manual_seed(0)
        while True:
            x = torch.randn(8, 16, generator=generator)
            yield x, x.sum(1, keepdim=True)


class EndlessModel(TinyModel):
    def train_dataloader(self):
        return DataLoader(Endless(), batch_size=None)


def test_unknown_horizon_fails_at_fit_start_and_says_what_to_set() -> None:
    trainer = make_trainer(max_epochs=-1, max_steps=-1, callbacks=[WarmupDecay(verbose=False)])
    model = EndlessModel()
    with pytest.raises(MisconfigurationException, match=r"max_steps"):
        trainer.fit(model)
    assert trainer.global_step == 0


def test_unknown_horizon_is_fine_for_shapes_without_one() -> None:
    from lightning.pytorch.callbacks import Callback

    from tests.helpers.lr_recorder import LRRecorder

    class StopAt(Callback):  # stops the endless run from outside; the horizon stays unknown
        def on_train_batch_end(self, trainer, *args):
            trainer.should_stop = trainer.global_step >= 6

    callback, recorder = WarmupDecay(warmup=2, decay="inverse_sqrt", verbose=False), LRRecorder()
    trainer = make_trainer(max_epochs=-1, max_steps=-1, callbacks=[callback, recorder, StopAt()])
    trainer.fit(EndlessModel())
    assert callback._driven[0].total is None
    sched = build_schedule(warmup_steps=2, total_steps=None, decay="inverse_sqrt")
    assert [lrs[0] for lrs in recorder.lrs()] == [1e-2 * sched(s) for s in range(6)]


def test_epoch_warmup_on_iterable_dataset_fails_at_fit_start() -> None:
    trainer = make_trainer(max_steps=10, callbacks=[WarmupDecay(warmup="1ep", verbose=False)])
    with pytest.raises(MisconfigurationException, match=r"warmup=1ep is in epochs"):
        trainer.fit(EndlessModel())


def test_resolved_warmup_longer_than_run_fails_at_fit_start() -> None:
    trainer = make_trainer(max_epochs=1, callbacks=[WarmupDecay(warmup="2ep", verbose=False)])
    with pytest.raises(MisconfigurationException, match=r"is 16 steps, and the warm-up must be shorter than the schedule's 8 steps"):
        trainer.fit(TinyModel())


def test_warmup_as_long_as_the_run_warns_at_fit_start() -> None:
    from tests.helpers.lr_recorder import LRRecorder

    callback, recorder = WarmupDecay(warmup="1ep", min_lr_ratio=0.1, verbose=False), LRRecorder()
    trainer = make_trainer(max_epochs=1, callbacks=[callback, recorder])
    with pytest.warns(UserWarning, match=r"warmup=1ep is as long as the schedule \(8 steps\)"):
        trainer.fit(TinyModel())
    assert callback._driven[0].warmups == [7, 7]
    assert recorder.lrs()[-1] == [1e-2, 1e-2]  # the last update reaches the peak


def test_auto_warmup_longer_than_run_warns_and_shortens() -> None:
    callback = WarmupDecay(warmup="auto", verbose=False)
    trainer = make_trainer(max_epochs=1, callbacks=[callback])
    with pytest.warns(UserWarning, match=r"warmup='auto' gives 2000 steps"):
        trainer.fit(TinyModel())
    assert callback._driven[0].warmups == [7, 7]


def test_auto_warmup_without_betas_fails() -> None:
    trainer = make_trainer(max_epochs=1, callbacks=[WarmupDecay(warmup="auto", verbose=False)])
    with pytest.raises(MisconfigurationException, match=r"has no betas"):
        trainer.fit(TinyModel(optimizer="sgd"))


def test_group_override_matching_nothing_fails() -> None:
    callback = WarmupDecay(warmup=1, verbose=False, groups={"encoder": {"warmup": 3}})
    trainer = make_trainer(max_epochs=1, callbacks=[callback])
    with pytest.raises(MisconfigurationException, match=r"groups=\['encoder'\] match no param group"):
        trainer.fit(TinyModel())


def test_optimizer_index_out_of_range_fails() -> None:
    trainer = make_trainer(max_epochs=1, callbacks=[WarmupDecay(optimizers=[1], verbose=False)])
    with pytest.raises(MisconfigurationException, match=r"has 1 optimizer"):
        trainer.fit(TinyModel())


class WithScheduler(TinyModel):
    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 5)}


def test_double_scheduling_warns() -> None:
    trainer = make_trainer(max_epochs=1, callbacks=[WarmupDecay(warmup=1, verbose=False)])
    with pytest.warns(UserWarning, match=r"double scheduling"):
        trainer.fit(WithScheduler())


def test_schedule_shorter_than_max_steps_warns() -> None:
    trainer = make_trainer(max_steps=8, callbacks=[WarmupDecay(warmup=1, total=5, verbose=False)])
    with pytest.warns(UserWarning, match=r"max_steps=8 gives 8 steps; .* remaining 3 steps"):
        trainer.fit(TinyModel())


def test_schedule_shorter_than_max_epochs_warns() -> None:
    # TinyModel: 8 batches per epoch, so max_epochs=2 is 16 optimizer steps
    trainer = make_trainer(max_epochs=2, callbacks=[WarmupDecay(warmup=1, total=5, verbose=False)])
    with pytest.warns(UserWarning, match=r"max_epochs=2 gives 16 steps; .* remaining 11 steps"):
        trainer.fit(TinyModel())


def test_preview_table_and_png(tmp_path) -> None:
    callback = WarmupDecay(warmup="10%", decay="cosine", min_lr_ratio=0.1)
    path = tmp_path / "preview.png"
    rows = callback.preview(total_steps=100, base_lrs=[1e-3, 1e-2], names=["a", "b"], path=str(path))
    sched = build_schedule(warmup_steps=10, total_steps=100, decay="cosine", min_lr_ratio=0.1)
    by_step = {r["step"]: r for r in rows}
    for step in (0, 9, 10, 11, 99, 100, 101):
        assert by_step[step]["a"] == pytest.approx(1e-3 * sched(step), rel=0, abs=0)
        assert by_step[step]["b"] == 1e-2 * sched(step)
    assert by_step[99]["a"] == 1e-4
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_preview_needs_a_horizon() -> None:
    with pytest.raises(ValueError, match=r"preview needs total_steps"):
        WarmupDecay(warmup=2).preview()


def test_lr_curve_png_written_at_fit_end(tmp_path) -> None:
    path = tmp_path / "lr.png"
    callback = WarmupDecay(warmup=2, plot_path=str(path), verbose=False)
    trainer = make_trainer(max_epochs=1, callbacks=[callback])
    trainer.fit(TinyModel())
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_unwritable_plot_path_fails_at_setup_before_training(tmp_path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    callback = WarmupDecay(warmup=2, plot_path=str(blocker / "lr.png"), verbose=False)
    trainer = make_trainer(max_epochs=1, callbacks=[callback])
    with pytest.raises(MisconfigurationException, match=r"plot_path=.*cannot be written.*plot_path=None"):
        trainer.fit(TinyModel())
    assert trainer.global_step == 0


def test_plot_path_folder_gets_a_file_inside(tmp_path) -> None:
    folder = tmp_path / "plots"
    folder.mkdir()
    callback = WarmupDecay(warmup=2, plot_path=str(folder), verbose=False)
    make_trainer(max_epochs=1, callbacks=[callback]).fit(TinyModel())
    assert (folder / "lr_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "plots.png").exists()


def test_callback_and_state_pickle() -> None:
    callback = WarmupDecay(warmup="5%", groups={"pg2": {"decay": "linear"}})
    clone = pickle.loads(pickle.dumps(callback))
    assert clone.spec == callback.spec and clone.group_specs == callback.group_specs


CONFIGS = sorted(glob.glob(os.path.join(REPO, "examples", "configs", "*.yaml")))


@pytest.mark.parametrize("config", CONFIGS, ids=[os.path.basename(c) for c in CONFIGS])
def test_every_example_config_loads_with_lightning_cli(config: str, tmp_path, monkeypatch) -> None:
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    monkeypatch.chdir(tmp_path)
    cli = LightningCLI(
        LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
        run=False, args=["--config", config], save_config_callback=None,
    )
    assert cli.trainer is not None and cli.model is not None


SCHEDULE_CONFIGS = [c for c in CONFIGS if os.path.basename(c).startswith("schedule_")]


@pytest.mark.parametrize("config", SCHEDULE_CONFIGS, ids=[os.path.basename(c) for c in SCHEDULE_CONFIGS])
def test_schedule_configs_train(config: str, tmp_path, monkeypatch) -> None:
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    monkeypatch.chdir(tmp_path)
    cli = LightningCLI(
        LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
        args=["fit", "--config", config, "--trainer.max_epochs=2", "--trainer.max_steps=30",
              "--trainer.limit_val_batches=0", "--trainer.logger=false",
              "--trainer.enable_checkpointing=false"],
        save_config_callback=None,
    )
    (callback,) = [c for c in cli.trainer.callbacks if isinstance(c, WarmupDecay)]
    steps = cli.trainer.estimated_stepping_batches
    assert cli.trainer.global_step == steps <= 30
    assert callback.history and callback.history[-1][0] == steps - 1
    peaks = [b for d in callback._driven for b in d.base_lrs]
    assert all(lr <= peak for (_, lrs) in callback.history for lr, peak in zip(lrs, peaks))


def test_cli_arguments_from_the_command_line(tmp_path, monkeypatch) -> None:
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    monkeypatch.chdir(tmp_path)
    cli = LightningCLI(
        LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
        run=False, save_config_callback=None,
        args=[
            "--model", "lightning_optkit.demo.DigitsClassifier",
            "--data", "lightning_optkit.demo.DigitsDataModule",
            "--trainer.callbacks+=lightning_optkit.WarmupDecay",
            "--trainer.callbacks.warmup=3ep", "--trainer.callbacks.decay=wsd",
            "--trainer.callbacks.options={decay_fraction: 0.3}",
            "--trainer.callbacks.min_lr_ratio=0.05",
        ],
    )
    (callback,) = [c for c in cli.trainer.callbacks if isinstance(c, WarmupDecay)]
    assert str(callback.spec.warmup) == "3ep"
    assert callback.spec.decay == "wsd" and dict(callback.spec.options) == {"decay_fraction": 0.3}
    assert callback.spec.min_lr_ratio == 0.05


def test_fast_dev_run_is_quiet() -> None:
    import warnings

    callbacks = [WarmupDecay(verbose=False), WarmupDecay(warmup="auto", verbose=False, total=3)]
    for callback in callbacks:
        trainer = make_trainer(fast_dev_run=True, callbacks=[callback])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit(TinyModel())
        assert not [w for w in caught if "WarmupDecay" in str(w.message) or "warmup" in str(w.message)]
        assert trainer.global_step == 1


def _cli(args: list[str], monkeypatch):
    import sys

    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    monkeypatch.setattr(sys, "argv", ["train.py"])
    return LightningCLI(LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                        run=False, args=args, save_config_callback=None)


def test_readme_command_line_override_of_the_last_callback(monkeypatch) -> None:
    config = os.path.join(REPO, "examples", "configs", "schedule_cosine.yaml")
    cli = _cli(["--config", config, "--trainer.callbacks.warmup=3ep", "--trainer.callbacks.decay=wsd"], monkeypatch)
    (callback,) = [c for c in cli.trainer.callbacks if isinstance(c, WarmupDecay)]
    assert str(callback.spec.warmup) == "3ep" and callback.spec.decay == "wsd"
    assert callback.spec.min_lr_ratio == 0.1  # the config's other arguments are kept


def test_command_line_override_of_a_callback_at_any_position(tmp_path, monkeypatch) -> None:
    config = tmp_path / "two.yaml"
    config.write_text(
        "trainer:\n  logger: false\n  callbacks:\n"
        "    - class_path: lightning_optkit.WarmupDecay\n      init_args: {warmup: 5%, min_lr_ratio: 0.2}\n"
        "    - class_path: lightning.pytorch.callbacks.LearningRateMonitor\n"
        "model:\n  class_path: tests.helpers.models.TinyModel\n"
        "data:\n  class_path: lightning_optkit.demo.DigitsDataModule\n"
    )
    # one entry per callback, in order: {} keeps an entry as the config has it
    cli = _cli(["--config", str(config), "--trainer.callbacks=[{init_args: {warmup: 3ep, decay: linear}}, {}]"],
               monkeypatch)
    callback = cli.trainer.callbacks[0]
    assert isinstance(callback, WarmupDecay)
    assert str(callback.spec.warmup) == "3ep" and callback.spec.decay == "linear"
    assert callback.spec.min_lr_ratio == 0.2
    assert type(cli.trainer.callbacks[1]).__name__ == "LearningRateMonitor"
