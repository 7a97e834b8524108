"""WarmupDecay in real (tiny) Lightning runs on CPU: the LR set before every update."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from lightning_optkit import WarmupDecay
from lightning_optkit.schedules import build_schedule
from tests.helpers.lr_recorder import AddGroupAt, CrashAt, LRRecorder, MemoryLogger
from tests.helpers.models import TinyModel, make_trainer

BASES = (1e-2, 3e-3)


class TwoGroupModel(TinyModel):
    """TinyModel whose two param groups have different base LRs and names."""

    def configure_optimizers(self):
        weights = [p for p in self.parameters() if p.ndim >= 2]
        biases = [p for p in self.parameters() if p.ndim < 2]
        return torch.optim.AdamW(
            [
                {"params": weights, "lr": BASES[0], "weight_decay": 0.1, "name": "weights"},
                {"params": biases, "lr": BASES[1], "weight_decay": 0.0, "name": "biases"},
            ]
        )


def expected(step: int, base: float, **kwargs) -> float:
    return base * build_schedule(**kwargs)(step)


@pytest.mark.parametrize("accumulate", [1, 4])
def test_lr_before_every_update_follows_schedule(accumulate: int) -> None:
    recorder = LRRecorder()
    callback = WarmupDecay(warmup=3, decay="cosine", min_lr_ratio=0.1, verbose=False)
    trainer = make_trainer(max_epochs=2, accumulate_grad_batches=accumulate, callbacks=[callback, recorder])
    trainer.fit(TwoGroupModel(n_loader=96, batch_size=4))  # 24 batches per epoch
    total = 2 * math.ceil(24 / accumulate)
    assert trainer.global_step == total
    got = recorder.lrs()
    assert len(got) == total
    for step, lrs in enumerate(got):
        for base, lr in zip(BASES, lrs):
            assert lr == expected(step, base, warmup_steps=3, total_steps=total, min_lr_ratio=0.1)
    # the last scheduled update runs exactly at each group's own floor
    assert got[-1] == [0.1 * b for b in BASES]
    assert got[0][0] > 0.0


def test_warmup_fraction_epochs_and_total_strings() -> None:
    recorder = LRRecorder()
    callback = WarmupDecay(warmup="1ep", total="50%", decay="linear", verbose=False)
    trainer = make_trainer(max_epochs=4, callbacks=[callback, recorder], limit_train_batches=5)
    trainer.fit(TinyModel())
    # horizon 20 steps, total 10, warm-up one epoch = 5 steps; after the total, the floor holds
    assert [d.total for d in callback._driven] == [10]
    assert callback._driven[0].warmups == [5, 5]
    lrs = [lrs[0] for lrs in recorder.lrs()]
    sched = build_schedule(warmup_steps=5, total_steps=10, decay="linear")
    assert lrs == [1e-2 * sched(s) for s in range(20)]
    assert lrs[10:] == [0.0] * 10


def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path) -> None:
    def run(root, crash_at=None, ckpt_path=None):
        torch.manual_seed(0)
        recorder = LRRecorder()
        callbacks = [
            WarmupDecay(warmup=6, decay="cosine", min_lr_ratio=0.05, verbose=False),
            recorder,
            ModelCheckpoint(dirpath=root, every_n_train_steps=1, save_last=True, save_top_k=-1),
        ]
        if crash_at is not None:
            callbacks.append(CrashAt(crash_at))
        trainer = make_trainer(max_epochs=2, callbacks=callbacks, enable_checkpointing=True,
                               default_root_dir=root)
        model = TwoGroupModel(n_loader=80, batch_size=8)
        try:
            trainer.fit(model, ckpt_path=ckpt_path)
        except RuntimeError as err:
            assert "planted crash" in str(err)
        return recorder, model

    straight, _ = run(tmp_path / "a")
    crashed, _ = run(tmp_path / "b", crash_at=4)  # mid-warm-up
    assert len(crashed.records) == 4
    resumed, _ = run(tmp_path / "b", ckpt_path=str(tmp_path / "b" / "last.ckpt"))
    assert [r[0] for r in resumed.records][0] == 4
    assert crashed.records + resumed.records == straight.records  # bit for bit


class TwoOptimizerModel(TinyModel):
    """Manual optimization: optimizer 0 steps every batch, optimizer 1 every other batch."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        opt_a, opt_b = self.optimizers()
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        opt_a.zero_grad()
        opt_b.zero_grad()
        self.manual_backward(loss)
        opt_a.step()
        if batch_idx % 2 == 0:
            opt_b.step()
        return loss

    def configure_optimizers(self):
        return [
            torch.optim.SGD(self.net[0].parameters(), lr=0.1),
            torch.optim.Adam(self.net[2].parameters(), lr=0.01),
        ]


def test_manual_optimization_two_optimizers_use_their_own_counts() -> None:
    recorder = LRRecorder()
    callback = WarmupDecay(warmup=2, total=8, decay="linear", min_lr_ratio=0.2, verbose=False)
    trainer = make_trainer(max_epochs=1, callbacks=[callback, recorder])
    trainer.fit(TwoOptimizerModel())  # 8 batches: optimizer 0 steps 8 times, optimizer 1 four times
    sched = build_schedule(warmup_steps=2, total_steps=8, decay="linear", min_lr_ratio=0.2)
    assert [lrs[0] for lrs in recorder.lrs(0)] == [0.1 * sched(s) for s in range(8)]
    assert [lrs[0] for lrs in recorder.lrs(1)] == [0.01 * sched(s) for s in range(4)]


def test_logger_receives_the_lr_just_set() -> None:
    logger = MemoryLogger()
    recorder = LRRecorder()
    callback = WarmupDecay(warmup=2, decay="linear", verbose=False, logging_interval=1)
    trainer = make_trainer(max_epochs=1, logger=logger, callbacks=[callback, recorder], log_every_n_steps=1)
    trainer.fit(TwoGroupModel())
    logged = {step: m for step, m in logger.calls if any(k.startswith("lr-") for k in m)}
    assert sorted(logged) == list(range(8))
    for step, _, lrs in recorder.records:
        assert logged[step]["lr-AdamW/weights"] == lrs[0]
        assert logged[step]["lr-AdamW/biases"] == lrs[1]


class InfLossModel(TinyModel):
    """Returns an infinite loss on the given batches, so the gradient scaler skips them."""

    def __init__(self, inf_batches: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.inf_batches = inf_batches

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("inf") if batch_idx in self.inf_batches else loss


@pytest.mark.parametrize("count", ["all", "applied"])
def test_skipped_scaler_steps_do_not_advance_applied_schedule(count: str) -> None:
    from lightning.pytorch.plugins import MixedPrecision

    plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**8))
    recorder = LRRecorder()
    callback = WarmupDecay(warmup=2, total=8, decay="linear", count=count, verbose=False)
    trainer = make_trainer(max_epochs=1, plugins=[plugin], callbacks=[callback, recorder])
    trainer.fit(InfLossModel(inf_batches=(1, 2)))
    sched = build_schedule(warmup_steps=2, total_steps=8, decay="linear")
    got = [lrs[0] for lrs in recorder.lrs()]
    if count == "all":
        want = [sched(s) for s in range(8)]
    else:  # batches 1 and 2 were skipped: the schedule waits for applied updates
        want = [sched(s) for s in (0, 1, 1, 1, 2, 3, 4, 5)]
    assert got == [1e-2 * w for w in want]


def test_group_added_later_gets_its_own_warmup() -> None:
    class Frozen(TinyModel):
        def configure_optimizers(self):
            for p in self.net[2].parameters():
                p.requires_grad_(False)
            return torch.optim.SGD(self.net[0].parameters(), lr=0.1)

    recorder = LRRecorder()
    callback = WarmupDecay(warmup=2, total=8, decay="constant", late_group_warmup=3, verbose=False)
    trainer = make_trainer(max_epochs=1, callbacks=[AddGroupAt(4, "net.2", lr=0.05), callback, recorder])
    trainer.fit(Frozen())
    second = [lrs[1] for lrs in recorder.lrs() if len(lrs) > 1]
    assert second == [0.05 * 1 / 4, 0.05 * 2 / 4, 0.05 * 3 / 4, 0.05]


def test_replaced_optimizer_is_picked_up_with_its_lr_as_peak() -> None:
    from lightning.pytorch.callbacks import Callback

    class Swap(Callback):
        def on_train_start(self, trainer, pl_module):
            trainer.optimizers = [torch.optim.SGD(pl_module.parameters(), lr=0.5)]

    recorder = LRRecorder()
    callback = WarmupDecay(warmup=0, total=8, decay="linear", min_lr_ratio=0.5, verbose=False)
    trainer = make_trainer(max_epochs=1, callbacks=[callback, Swap(), recorder])
    trainer.fit(TinyModel())
    sched = build_schedule(warmup_steps=0, total_steps=8, decay="linear", min_lr_ratio=0.5)
    assert [lrs[0] for lrs in recorder.lrs()] == [0.5 * sched(s) for s in range(8)]


def test_weight_decay_follows_lr_multiplier() -> None:
    class WDRecorder(LRRecorder):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            self.records.append((trainer.global_step, 0, [g["weight_decay"] for g in optimizer.param_groups]))

    recorder = WDRecorder()
    callback = WarmupDecay(warmup=2, decay="linear", scale_weight_decay=True, verbose=False)
    trainer = make_trainer(max_epochs=1, callbacks=[callback, recorder])
    trainer.fit(TwoGroupModel())
    sched = build_schedule(warmup_steps=2, total_steps=8, decay="linear")
    assert [wd[0] for wd in recorder.lrs()] == [0.1 * sched(s) for s in range(8)]


def test_auto_warmup_uses_beta2() -> None:
    class Adam99(TinyModel):
        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3, betas=(0.9, 0.99))

    callback = WarmupDecay(warmup="auto", total=1000, verbose=False)
    trainer = make_trainer(max_steps=2, callbacks=[callback])
    trainer.fit(Adam99())
    assert callback._driven[0].warmups == [200]


def test_group_overrides_by_name_and_index() -> None:
    recorder = LRRecorder()
    callback = WarmupDecay(
        warmup=2, decay="cosine", verbose=False,
        groups={"biases": {"decay": "constant", "warmup": 0}, "0": {"min_lr_ratio": 0.5}},
    )
    trainer = make_trainer(max_epochs=1, callbacks=[callback, recorder])
    trainer.fit(TwoGroupModel())
    lrs = recorder.lrs()
    assert [r[1] for r in lrs] == [BASES[1]] * 8
    assert lrs[-1][0] == 0.5 * BASES[0]


def test_resume_with_longer_horizon_continue_or_stretch(tmp_path) -> None:
    def fit(epochs, policy, ckpt=None):
        recorder = LRRecorder()
        callbacks = [WarmupDecay(warmup=2, decay="linear", horizon_change=policy, verbose=False), recorder]
        trainer = make_trainer(max_epochs=epochs, callbacks=callbacks, default_root_dir=tmp_path)
        trainer.fit(TinyModel(), ckpt_path=ckpt)
        return trainer, recorder

    trainer, _ = fit(1, "continue")
    path = tmp_path / "one_epoch.ckpt"
    trainer.save_checkpoint(path)
    with pytest.warns(UserWarning, match="horizon changed from 8 to 16"):
        _, cont = fit(2, "continue", str(path))
    assert [lrs[0] for lrs in cont.lrs()] == [0.0] * 8  # the old curve ended at its floor
    _, stretch = fit(2, "stretch", str(path))
    sched = build_schedule(warmup_steps=2, total_steps=16, decay="linear")
    assert [lrs[0] for lrs in stretch.lrs()] == [1e-2 * sched(s) for s in range(8, 16)]


def test_works_as_plain_lambda_lr_too() -> None:
    sched = build_schedule(warmup_steps=2, total_steps=10, decay="cosine", min_lr_ratio=0.1)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    lambda_lr = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=sched)
    seen = []
    for _ in range(12):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        lambda_lr.step()
    assert seen == [sched(s) for s in range(12)]


def test_hf_compat_in_a_run_equals_transformers_formulas() -> None:
    """transformers' cosine and polynomial schedules, written out, with two groups of other LRs."""
    recorder = LRRecorder()
    callback = WarmupDecay(warmup=3, decay="polynomial", compat="hf", options={"power": 2.0, "lr_end": 1e-4},
                           verbose=False)
    trainer = make_trainer(max_epochs=2, callbacks=[callback, recorder])
    trainer.fit(TwoGroupModel())  # 16 updates; optimizer.defaults["lr"] is AdamW's default 1e-3

    def hf_poly(step: int, lr_init: float = 1e-3, end: float = 1e-4, power: float = 2.0) -> float:
        if step < 3:
            return step / 3
        if step > 16:
            return end / lr_init
        decay = (lr_init - end) * (1 - (step - 3) / (16 - 3)) ** power + end
        return decay / lr_init

    for step, lrs in enumerate(recorder.lrs()):
        assert lrs == [b * hf_poly(step) for b in BASES]

    recorder = LRRecorder()
    callback = WarmupDecay(warmup=0.25, decay="cosine", compat="hf", verbose=False)
    trainer = make_trainer(max_epochs=2, callbacks=[callback, recorder])
    trainer.fit(TwoGroupModel())
    for step, lrs in enumerate(recorder.lrs()):  # warm-up ceil(0.25 * 16) = 4 steps, first at LR 0
        factor = step / 4 if step < 4 else max(0.0, 0.5 * (1 + math.cos(math.pi * 2 * 0.5 * (step - 4) / 12)))
        assert lrs == pytest.approx([b * factor for b in BASES], abs=1e-15)
