"""AutoOptimizer inside Trainer.fit: injection, rules, race, reporting, resume, explain-only."""

from __future__ import annotations

import copy
import importlib.util
import json
import os

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from lightning_optkit import AutoOptimizer
from lightning_optkit._trainer import current_search_phase, run_notes
from lightning_optkit.callbacks.auto_optimizer import search as search_module
from lightning_optkit.optim import runner as runner_module
from tests.helpers.models import TinyModel, make_trainer
from tests.helpers.optim_models import DENSE_FIRST, ClassifierModel, NoOptimizerModel


def test_module_without_configure_optimizers_gets_one(tmp_path, capsys) -> None:
    cb = AutoOptimizer(mode="rules", candidates=["adamw"], kernel="for-loop")
    trainer = make_trainer(max_steps=4, callbacks=[cb], default_root_dir=tmp_path)
    model = NoOptimizerModel()
    trainer.fit(model)
    opt = trainer.optimizers[0]
    assert isinstance(opt, torch.optim.AdamW) and trainer.global_step == 4
    assert [g["name"] for g in opt.param_groups] == ["decay", "no_decay"]
    assert all(g["lr"] == pytest.approx(3e-3) for g in opt.param_groups)
    assert cb.choice.optimizer == "adamw" and cb.choice.family == "mlp"
    assert cb.choice.kernel == "for-loop" and opt.param_groups[0]["foreach"] is False
    out = capsys.readouterr().out
    assert out.count("AutoOptimizer (rules): adamw") == 1
    assert "configure_optimizers" not in model.__dict__  # the patch is removed after fit
    saved = json.loads((tmp_path / "auto_optimizer.json").read_text())
    assert saved["optimizer"] == "adamw" and saved["applied"] is True
    assert run_notes(trainer).decisions["optimizer"]["optimizer"] == "adamw"


def test_plain_optimizer_is_replaced_with_a_message(tmp_path, capsys) -> None:
    cb = AutoOptimizer(mode="rules", candidates=["sgd"], lr=0.05, save_json=False,
                       replace_user_optimizer=True)
    trainer = make_trainer(max_steps=2, callbacks=[cb])
    with pytest.warns(UserWarning, match=r"replacing Adam\(lr=0.001\) from configure_optimizers "
                      r"with sgd lr=0.05; pass replace_user_optimizer=False") as record:
        trainer.fit(ClassifierModel())
    assert sum("replace_user_optimizer" in str(w.message) for w in record) == 1  # once
    opt = trainer.optimizers[0]
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["lr"] == 0.05
    assert opt.param_groups[0]["nesterov"] is True
    assert "replaced" in cb.choice.reasons[0]


def test_choice_is_logged_as_hyperparameters(tmp_path) -> None:
    cb = AutoOptimizer(mode="rules", candidates=["adamw"], kernel="fused", verbose=False)
    logger = CSVLogger(tmp_path, name="logs")
    trainer = make_trainer(max_steps=2, callbacks=[cb], logger=logger)
    trainer.fit(NoOptimizerModel())
    hparams = (tmp_path / "logs" / "version_0" / "hparams.yaml").read_text()
    assert "auto_optimizer/optimizer: adamw" in hparams
    assert "auto_optimizer/kernel: fused" in hparams
    assert os.path.exists(os.path.join(trainer.log_dir, "auto_optimizer.json"))
    assert trainer.optimizers[0].param_groups[0]["fused"] is True


def test_race_runs_on_real_batches_and_keeps_the_winner(tmp_path, monkeypatch) -> None:
    phases = []
    original = search_module.run_race

    def spy(model, labels, builders, step, next_batch, plan, **kw):
        phases.append(current_search_phase(trainer))
        batch = next_batch()
        assert isinstance(batch, list) and batch[0].shape == (16, 8)  # a real training batch
        return original(model, labels, builders, step, next_batch, plan, **kw)

    monkeypatch.setattr(search_module, "run_race", spy)
    cb = AutoOptimizer(mode="race", candidates=["adamw", "sgd", "adagrad"], budget=32,
                       kernel="for-loop", save_json=False, verbose=False)
    trainer = make_trainer(max_epochs=8, callbacks=[cb])
    model = NoOptimizerModel()
    trainer.fit(model)
    choice = cb.choice
    assert phases == ["optimizer_race"] and current_search_phase(trainer) is None
    race = choice.race
    assert set(race["curves"]) == {c["label"] for c in choice.candidates}
    assert race["winner"] in race["curves"] and choice.mode == "race"
    assert race["loser_steps"] <= 32 and choice.overhead_steps == race["loser_steps"]
    assert choice.overhead_seconds > 0
    winner_label = race["winner"]
    assert f"{choice.optimizer}@{choice.lr:.0e}" == winner_label
    assert all(len(c["curve"]) >= 8 for c in choice.candidates)
    opt = trainer.optimizers[0]
    assert type(opt).__name__.lower().startswith(choice.optimizer[:4])
    assert all(g["lr"] == pytest.approx(choice.lr * g.get("lr_mult", 1.0)) for g in opt.param_groups)


def test_race_ties_keep_the_first_choice() -> None:
    cb = AutoOptimizer(mode="race", candidates=["adamw", "nadamw"], lr=1e-3, budget=16,
                       kernel="for-loop", save_json=False, verbose=False)
    trainer = make_trainer(max_epochs=6, callbacks=[cb])
    trainer.fit(NoOptimizerModel())
    # identical-looking candidates on a smooth toy task are not separated: the first stays
    assert cb.choice.race["winner"] == "adamw@1e-03" and cb.choice.optimizer == "adamw"
    assert "the prior's first choice stays" in " ".join(cb.choice.reasons)


def test_auto_mode_falls_back_to_rules_on_short_runs() -> None:
    cb = AutoOptimizer(candidates=["adamw", "sgd"], kernel="for-loop", save_json=False,
                       verbose=False)
    trainer = make_trainer(max_steps=5, callbacks=[cb])
    trainer.fit(NoOptimizerModel())
    assert cb.choice.mode == "rules" and cb.choice.race is None
    assert any("too short to race" in r for r in cb.choice.reasons)


def test_lr_test_always_sets_the_peak_lr(tmp_path) -> None:
    cb = AutoOptimizer(mode="rules", candidates=["adamw"], lr_test="always", kernel="for-loop",
                       save_json=False, verbose=False)
    trainer = make_trainer(max_steps=3, callbacks=[cb])
    trainer.fit(NoOptimizerModel())
    test = cb.choice.lr_test
    assert test is not None and 3e-4 <= test["suggestion"] <= 3e-2
    assert cb.choice.lr == test["suggestion"] == trainer.optimizers[0].param_groups[0]["lr"]
    assert len(test["losses"]) <= cb.choice.overhead_steps <= 40


def test_explain_only_changes_nothing(capsys) -> None:
    cb = AutoOptimizer(mode="rules", candidates=["adamw"], explain_only=True, save_json=False)
    trainer = make_trainer(max_steps=3, callbacks=[cb])
    model = TinyModel()
    trainer.fit(model)
    opt = trainer.optimizers[0]
    assert isinstance(opt, torch.optim.AdamW)
    assert [g["lr"] for g in opt.param_groups] == [1e-2, 1e-2]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    assert "lr_mult" not in opt.param_groups[0]
    out = capsys.readouterr().out
    assert "AutoOptimizer (rules): adamw" in out and "explain_only: nothing changed" in out
    assert run_notes(trainer).decisions["optimizer"]["applied"] is False
    assert cb.state_dict() == {}


def test_resume_rebuilds_the_same_optimizer_without_a_new_search(tmp_path, monkeypatch) -> None:
    cb = AutoOptimizer(mode="race", candidates=["sgd", "adamw"], budget=16, kernel="for-loop",
                       save_json=False, verbose=False)
    trainer = make_trainer(max_epochs=4, callbacks=[cb])
    model = NoOptimizerModel()
    trainer.fit(model)
    path = str(tmp_path / "last.ckpt")
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=False)
    first = cb.choice.to_dict()

    def no_search(*args, **kwargs):
        raise AssertionError("a resumed run must not search again")

    monkeypatch.setattr(search_module, "run_race", no_search)
    monkeypatch.setattr(search_module, "run_lr_test", no_search)
    monkeypatch.setattr(runner_module, "measure_kernels", no_search)
    seen = {}

    from lightning.pytorch.callbacks import Callback

    class StateProbe(Callback):
        def on_train_start(self, trainer, pl_module):
            seen["state"] = copy.deepcopy(trainer.optimizers[0].state_dict())

    cb2 = AutoOptimizer(mode="race", candidates=["sgd", "adamw"], budget=16, save_json=False,
                        verbose=False)
    trainer2 = make_trainer(max_epochs=5, callbacks=[cb2, StateProbe()])
    trainer2.fit(NoOptimizerModel(), ckpt_path=path)
    again = cb2.choice.to_dict()
    for key in ("optimizer", "lr", "weight_decay", "hparams", "kernel", "race", "groups"):
        assert again[key] == first[key], key
    assert "restored from the checkpoint: no new search" in again["reasons"]
    restored, expected = seen["state"], saved["optimizer_states"][0]
    assert restored["param_groups"] == expected["param_groups"]
    for idx, st in expected["state"].items():
        for k, v in st.items():
            assert torch.equal(restored["state"][idx][k], v), (idx, k)


@pytest.mark.parametrize("kwargs,match", [
    (dict(mode="fast"), r"mode='fast' is not one of 'auto', 'rules', 'race'"),
    (dict(candidates=[]), r"candidates=\[\] is not allowed: expected at least one optimizer name"),
    (dict(candidates=["adamq"]), r"candidates: name='adamq' is not one of .*did you mean name='adam'"),
    (dict(lr=0.0), r"lr=0.0 is not allowed: expected a finite number in \(0.0, inf\)"),
    (dict(lr=-1e-3), r"lr=-0.001 is not allowed"),
    (dict(embedding_lr_mult=0), r"embedding_lr_mult=0 is not allowed"),
    (dict(budget=0), r"budget=0 is not allowed"),
    (dict(layer_decay=2.0), r"layer_decay=2.0 is not allowed: expected a finite number in \(0.0, 1.0\]"),
    (dict(weight_decay=-1.0), r"weight_decay=-1.0 is not allowed"),
    (dict(kernel="cuda"), r"kernel='cuda' is not one of"),
    (dict(lr_test="sometimes"), r"lr_test='sometimes' is not one of"),
])
def test_bad_arguments_fail_at_construction(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AutoOptimizer(**kwargs)


def test_setup_errors_before_any_step() -> None:
    model = NoOptimizerModel()
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        make_trainer(max_steps=2, callbacks=[AutoOptimizer(save_json=False)]).fit(model)
    with pytest.raises(ValueError, match=r"budget=500 steps is not smaller than the run \(4"):
        make_trainer(max_steps=4, callbacks=[AutoOptimizer(budget=500, save_json=False)]).fit(
            NoOptimizerModel())
    with pytest.raises(ValueError, match=r"mode='race' needs a known horizon"):
        make_trainer(max_epochs=-1, max_steps=-1, callbacks=[AutoOptimizer(
            mode="race", save_json=False)]).fit(NoOptimizerModel())


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed-scaler"])
def test_race_under_a_precision_plugin(precision: str) -> None:
    from lightning.pytorch.plugins import MixedPrecision

    cb = AutoOptimizer(mode="race", candidates=["adamw", "sgd"], budget=16, kernel="for-loop",
                       save_json=False, verbose=False)
    if precision == "bf16-mixed":
        trainer = make_trainer(max_epochs=4, precision=precision, callbacks=[cb])
    else:  # fp16 autocast with a loss scaler on CPU: the race uses a private scaler
        plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))
        trainer = make_trainer(max_epochs=4, plugins=[plugin], callbacks=[cb])
    trainer.fit(NoOptimizerModel())
    assert cb.choice.race["winner"] is not None and trainer.global_step == 24
    assert all(len(c) >= 8 for c in cb.choice.race["curves"].values())
    assert trainer.optimizers[0] is not None


def test_optimizer_and_scheduler_output_is_replaced(capsys) -> None:
    class WithScheduler(NoOptimizerModel):
        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=0.1)
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 1)}

    cb = AutoOptimizer(mode="rules", candidates=["adamw"], kernel="for-loop", save_json=False,
                       replace_user_optimizer=True)
    trainer = make_trainer(max_steps=2, callbacks=[cb])
    with pytest.warns(UserWarning, match=r"replacing SGD\(lr=0.1\) \+ StepLR from"):
        trainer.fit(WithScheduler())
    assert isinstance(trainer.optimizers[0], torch.optim.AdamW)
    assert trainer.lr_scheduler_configs == []


def test_layers_built_in_configure_model_are_grouped() -> None:
    class Lazy(NoOptimizerModel):
        def __init__(self) -> None:
            super().__init__()
            self.net = None

        def configure_model(self) -> None:
            if self.net is None:
                self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))

    cb = AutoOptimizer(mode="rules", kernel="for-loop", save_json=False, verbose=False)
    trainer = make_trainer(max_steps=2, callbacks=[cb])
    trainer.fit(Lazy())
    assert sum(g["tensors"] for g in cb.choice.groups) == 4


class _AnyNet(NoOptimizerModel):
    def __init__(self, net: torch.nn.Module, x: torch.Tensor) -> None:
        super().__init__()
        self.net, self.x = net, x

    def training_step(self, batch, batch_idx):
        return self.net(batch[0]).float().pow(2).mean()

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(self.x), batch_size=4)


@pytest.mark.parametrize("family,optimizer,emb_mult", [
    ("mlp", DENSE_FIRST, 1.0), ("cnn_bn", "sgd", 1.0), ("transformer", DENSE_FIRST, 1.0),
    ("recurrent", "adamw", 1.0), ("embedding", "adamw", 10.0),
])
def test_family_decisions_in_fit(family: str, optimizer: str, emb_mult: float) -> None:
    from tests.helpers import optim_models as om

    nets = {
        "mlp": (om.mlp(), torch.randn(8, 8)),
        "cnn_bn": (om.cnn_bn(), torch.randn(8, 1, 6, 6)),
        "transformer": (om.TinyTransformer(), torch.randint(0, 10, (8, 5))),
        "recurrent": (om.TinyLSTM(), torch.randint(0, 6, (8, 5))),
        "embedding": (om.EmbeddingModel(), torch.randint(0, 100, (8, 3))),
    }
    net, x = nets[family]
    cb = AutoOptimizer(mode="rules", kernel="for-loop", save_json=False, verbose=False)
    trainer = make_trainer(max_steps=2, callbacks=[cb])
    trainer.fit(_AnyNet(net, x))
    assert (cb.choice.family, cb.choice.optimizer) == (family, optimizer)
    groups = {g["name"]: g for g in trainer.optimizers[0].param_groups}
    if family in ("embedding", "transformer", "recurrent"):
        assert groups["embedding"]["lr"] == pytest.approx(cb.choice.lr * emb_mult)
        assert groups["embedding"]["weight_decay"] == 0.0
    assert groups["no_decay"]["weight_decay"] == 0.0


def test_warmup_decay_reads_the_chosen_peak_after_the_race() -> None:
    from lightning_optkit import WarmupDecay

    cb = AutoOptimizer(mode="race", candidates=["sgd", "adamw"], budget=16, kernel="for-loop",
                       save_json=False, verbose=False)
    sched = WarmupDecay(warmup=2, decay="cosine", min_lr_ratio=0.1)
    trainer = make_trainer(max_epochs=4, callbacks=[sched, cb])
    trainer.fit(NoOptimizerModel())
    group = trainer.optimizers[0].param_groups[0]
    assert group["initial_lr"] == pytest.approx(cb.choice.lr)  # the schedule's peak
    assert group["lr"] == pytest.approx(0.1 * cb.choice.lr, rel=0.05)  # decayed to the floor


def test_module_is_left_unpatched_after_validate_and_fit() -> None:
    import pickle

    class WithValidation(ClassifierModel):
        def validation_step(self, batch, batch_idx):
            return None

    cb = AutoOptimizer(mode="rules", candidates=["adamw"], kernel="for-loop", save_json=False,
                       verbose=False)
    model = WithValidation()
    trainer = make_trainer(max_steps=1, callbacks=[cb], limit_val_batches=1)
    trainer.validate(model, dataloaders=model.train_dataloader())
    assert "configure_optimizers" not in model.__dict__
    trainer.fit(model)
    assert "configure_optimizers" not in model.__dict__
    pickle.dumps(model.net)
    assert cb.choice is not None and cb.choice.optimizer == "adamw"


@pytest.mark.gpu
def test_race_on_cuda_with_fused_kernels() -> None:
    cb = AutoOptimizer(mode="race", candidates=["adamw", "sgd"], budget=16, save_json=False,
                       verbose=False)
    from lightning.pytorch.callbacks import Callback

    class ParamsOnDevice(Callback):
        """During fit (teardown moves the module back to the CPU): the optimizer's parameters."""

        def __init__(self) -> None:
            self.on_cuda: list[bool] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.on_cuda.append(all(p.is_cuda for g in trainer.optimizers[0].param_groups for p in g["params"]))

    seen = ParamsOnDevice()
    trainer = make_trainer(max_epochs=4, accelerator="cuda", precision="16-mixed", callbacks=[cb, seen],
                           deterministic=False)
    trainer.fit(NoOptimizerModel())
    assert cb.choice.race["winner"] is not None and cb.choice.kernel in ("fused", "foreach", "for-loop")
    assert seen.on_cuda and all(seen.on_cuda)


def test_race_accepts_a_dict_returning_training_step() -> None:
    class DictStep(NoOptimizerModel):
        def training_step(self, batch, batch_idx):
            return {"loss": super().training_step(batch, batch_idx)}

    cb = AutoOptimizer(mode="race", candidates=["adamw", "sgd"], budget=16, kernel="for-loop",
                       save_json=False, verbose=False)
    trainer = make_trainer(max_epochs=4, callbacks=[cb])
    trainer.fit(DictStep())
    race = cb.choice.race
    assert race["winner"] is not None
    assert all(len(c) in (8, 16) and all(v > 0 for v in c) for c in race["curves"].values())


@pytest.mark.skipif(importlib.util.find_spec("prodigyopt") is None, reason="prodigyopt missing")
def test_race_replaces_a_clearly_worse_first_choice() -> None:
    # sgd at lr 1e-6 cannot move; the learning-rate free Prodigy ignores `lr` and learns
    cb = AutoOptimizer(mode="race", candidates=["sgd", "prodigy"], lr=1e-6, budget=32,
                       kernel="for-loop", save_json=False, verbose=False)
    trainer = make_trainer(max_epochs=8, callbacks=[cb])
    trainer.fit(NoOptimizerModel())
    assert cb.choice.race["winner"] == "prodigy@1e+00" and cb.choice.optimizer == "prodigy"
    assert "clearly ahead of the prior's first choice" in " ".join(cb.choice.reasons)
    assert type(trainer.optimizers[0]).__name__ == "Prodigy"
    assert cb.choice.race["loser_steps"] <= 32


def test_callback_pickles_before_and_after_fit() -> None:
    import pickle

    cb = AutoOptimizer(mode="rules", kernel="for-loop", save_json=False, verbose=False)
    pickle.loads(pickle.dumps(cb))
    make_trainer(max_steps=1, callbacks=[cb]).fit(NoOptimizerModel())
    clone = pickle.loads(pickle.dumps(cb))
    assert clone.choice == cb.choice and clone.settings.mode == "rules"


def test_race_with_accumulation_and_clipping() -> None:
    cb = AutoOptimizer(mode="race", candidates=["adamw", "sgd"], budget=16, kernel="for-loop",
                       save_json=False, verbose=False)
    trainer = make_trainer(max_epochs=8, accumulate_grad_batches=2, gradient_clip_val=0.5,
                           callbacks=[cb])
    trainer.fit(NoOptimizerModel())
    assert trainer.global_step == 24 and cb.choice.race["winner"] is not None
    assert cb.choice.run["horizon"] == 24


def test_race_on_an_iterable_dataset_with_max_steps() -> None:
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            g = torch.Generator().manual_seed(0)
            for _ in range(1000):
                x = torch.randn(8, generator=g)
                yield x, int(x[:4].argmax())

    class StreamModel(NoOptimizerModel):
        def train_dataloader(self):
            return torch.utils.data.DataLoader(Stream(), batch_size=16)

    cb = AutoOptimizer(mode="auto", budget=16, kernel="for-loop", candidates=["adamw", "sgd"],
                       save_json=False, verbose=False)
    trainer = make_trainer(max_steps=30, callbacks=[cb])
    trainer.fit(StreamModel())
    assert cb.choice.mode == "race" and cb.choice.run["horizon"] == 30
    assert trainer.global_step == 30
