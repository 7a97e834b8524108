"""The user's own optimizers: kept unless asked, never touched under manual optimization, and a
module without ``configure_optimizers`` gets the choice (OptKit and AutoOptimizer alike)."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

from lightning_optkit import AutoOptimizer, OptKit
from lightning_optkit._trainer import run_notes
from tests.helpers.models import make_trainer
from tests.helpers.user_models import AdamStepLR, NoConfigure, TinyGAN

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "examples", "configs", "optkit_keep_user.yaml")


def _auto(**kw):
    return AutoOptimizer(mode="rules", save_json=False, verbose=False, **kw)


def _optkit(**kw):
    # precision and profiler off: the comparison is with the same run without the callback
    return OptKit(optimizer=dict(mode="rules", save_json=False, **kw), precision=False,
                  profiler=False)


MAKERS = {"auto": _auto, "optkit": _optkit}


def _fit(model_cls, callbacks, epochs: int = 3):
    torch.manual_seed(0)
    model = model_cls()
    trainer = make_trainer(max_epochs=epochs, callbacks=callbacks)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model)
    ours = [str(w.message) for w in caught if "replace_user_optimizer" in str(w.message)]
    return model, trainer, ours


def _auto_part(cb):
    return cb if isinstance(cb, AutoOptimizer) else cb.parts["optimizer"]


@pytest.mark.parametrize("kind", MAKERS)
def test_module_without_configure_optimizers_gets_the_choice(kind: str) -> None:
    cb = MAKERS[kind]()
    model, trainer, _ = _fit(NoConfigure, [cb], epochs=1)
    assert trainer.global_step == 4 and len(trainer.optimizers) == 1
    auto = _auto_part(cb)
    assert not auto.kept_user_optimizer
    assert type(trainer.optimizers[0]).__name__.lower() == auto.choice.optimizer
    if kind == "optkit":
        assert "schedule" in run_notes(trainer).decisions  # WarmupDecay drove the choice


@pytest.mark.parametrize("kind", MAKERS)
def test_gan_with_two_manual_optimizers_trains_exactly_as_without(kind: str) -> None:
    plain, _, _ = _fit(TinyGAN, [])
    cb = MAKERS[kind](replace_user_optimizer=True)  # even when replacing is asked for
    model, trainer, ours = _fit(TinyGAN, [cb])
    assert [type(o).__name__ for o in trainer.optimizers] == ["Adam", "SGD"]
    for a, b in zip(plain.parameters(), model.parameters()):
        assert torch.equal(a, b)
    assert ours == []
    summary = run_notes(trainer).decisions["optimizer"]
    assert summary["applied"] is False
    assert summary["summary"].startswith("nothing chosen: manual optimization with the module's "
                                         "own Adam(lr=0.0002) + SGD(lr=0.01)")
    assert not any("scheduler" in r for r in summary["reasons"])
    assert _auto_part(cb).state_dict() == {}


@pytest.mark.parametrize("kind", MAKERS)
def test_user_adam_and_steplr_are_kept_by_default(kind: str) -> None:
    plain, plain_trainer, _ = _fit(AdamStepLR, [])
    cb = MAKERS[kind]()
    model, trainer, ours = _fit(AdamStepLR, [cb])
    assert type(trainer.optimizers[0]) is torch.optim.Adam
    assert type(trainer.lr_scheduler_configs[0].scheduler).__name__ == "StepLR"
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(5e-4)  # StepLR stepped
    for a, b in zip(plain.parameters(), model.parameters()):
        assert torch.equal(a, b)
    assert ours == []  # nothing replaced: nothing to warn about
    reasons = run_notes(trainer).decisions["optimizer"]["reasons"]
    assert reasons[0].startswith("configure_optimizers returned Adam(lr=0.001) + StepLR: kept "
                                 "(replace_user_optimizer=False")
    assert reasons[1].startswith("would choose ")


@pytest.mark.parametrize("kind", MAKERS)
def test_replacing_the_user_optimizer_warns_once(kind: str) -> None:
    cb = MAKERS[kind](replace_user_optimizer=True)
    model, trainer, ours = _fit(AdamStepLR, [cb])
    auto = _auto_part(cb)
    assert type(trainer.optimizers[0]).__name__.lower() == auto.choice.optimizer != "adam"
    assert trainer.lr_scheduler_configs == []
    assert len(ours) == 1
    assert ours[0].startswith(f"AutoOptimizer: replacing Adam(lr=0.001) + StepLR from "
                              f"configure_optimizers with {auto.choice.optimizer} lr=")
    assert ours[0].endswith("pass replace_user_optimizer=False to keep your optimizer")


def test_infinite_data_without_max_steps_names_the_missing_horizon() -> None:
    class Endless(torch.utils.data.IterableDataset):
        def __iter__(self):
            while True:
                yield torch.randn(8), torch.randn(1)

    class Stream(NoConfigure):
        def train_dataloader(self):
            return torch.utils.data.DataLoader(Endless(), batch_size=4)

    cb = AutoOptimizer(mode="race", candidates=["adamw", "sgd"], save_json=False, verbose=False)
    trainer = make_trainer(max_epochs=-1, callbacks=[cb])
    with pytest.raises(ValueError, match=r"needs a known horizon .*set max_steps"):
        trainer.fit(Stream())
    assert trainer.global_step == 0


def _cli(*extra: str) -> LightningCLI:
    return LightningCLI(
        LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
        run=False, save_config_callback=None,
        args=["--config", CONFIG, "--trainer.logger", "false", "--trainer.max_epochs", "1",
              "--trainer.enable_checkpointing", "false", "--trainer.limit_train_batches", "3",
              "--trainer.limit_val_batches", "0", *extra])


def test_cli_config_keeps_the_demo_optimizer(tmp_path) -> None:
    cli = _cli("--trainer.default_root_dir", str(tmp_path))
    cb = next(c for c in cli.trainer.callbacks if isinstance(c, OptKit))
    assert cb.parts["optimizer"].replace_user_optimizer is False
    cli.trainer.fit(cli.model, cli.datamodule)
    opt = cli.trainer.optimizers[0]
    assert type(opt) is torch.optim.AdamW and opt.param_groups[0]["lr"] == 0.002
    assert cb.parts["optimizer"].kept_user_optimizer


@pytest.mark.parametrize("model", ["NoConfigure", "TinyGAN"])
def test_cli_no_configure_and_gan(model: str, tmp_path) -> None:
    cli = _cli("--trainer.default_root_dir", str(tmp_path), "--model",
               f"tests.helpers.user_models.{model}")
    cli.trainer.fit(cli.model)  # the module brings its own data
    auto = next(c for c in cli.trainer.callbacks if isinstance(c, OptKit)).parts["optimizer"]
    assert auto.kept_user_optimizer is (model == "TinyGAN")
    assert len(cli.trainer.optimizers) == (2 if model == "TinyGAN" else 1)
