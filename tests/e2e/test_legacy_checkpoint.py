"""A checkpoint written by lightning_optkit 0.1 (before the package layout changed) still resumes.

``tests/fixtures/optkit_v0_1.ckpt`` was written by 0.1.0 with WarmupDecay(warmup=3),
AutoOptimizer(mode="rules"), BottleneckProfiler and AutoPrecision(mode="16-mixed") after two
epochs of ``TinyModel`` (16 steps).
"""

from __future__ import annotations

from pathlib import Path

from lightning_optkit import AutoOptimizer, AutoPrecision, BottleneckProfiler, WarmupDecay
from tests.helpers.models import TinyModel, make_trainer

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "optkit_v0_1.ckpt"


def test_checkpoint_from_0_1_resumes_every_component(tmp_path) -> None:
    schedule, chooser, plugin = WarmupDecay(warmup=3), AutoOptimizer(mode="rules"), AutoPrecision(mode="16-mixed")
    trainer = make_trainer(max_epochs=3, callbacks=[schedule, chooser, BottleneckProfiler(dirpath=str(tmp_path))],
                           plugins=[plugin])
    trainer.fit(TinyModel(), ckpt_path=str(FIXTURE))

    assert trainer.global_step == 24
    assert chooser.choice is not None and chooser.choice.optimizer == "adamw"
    assert chooser.choice.reasons[-1] == "restored from the checkpoint: no new search"
    assert plugin.decision is not None and plugin.decision.precision == "16-mixed"
    # the restored scale (8192, after 4 skipped steps) went on from where it was
    assert plugin.skipped_steps >= 4
    # the schedule's horizon came from the checkpoint (16 steps of a 2-epoch run, now 24)
    assert schedule.state_dict()["base_lrs"] == {"0": [0.003, 0.003]}
