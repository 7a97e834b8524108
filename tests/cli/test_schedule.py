"""``python -m lightning_optkit schedule``: preview a config's schedule without training."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from lightning_optkit.cli import horizon_of, main
from lightning_optkit.schedules import build_schedule

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(REPO, "examples", "configs")


def trainer(**kw):
    base = dict(limit_train_batches=1.0, accumulate_grad_batches=1, max_steps=-1, max_epochs=1)
    base.update(kw)
    return SimpleNamespace(**base)


@pytest.mark.parametrize(
    ("kw", "batches", "want"),
    [
        (dict(max_epochs=3), 23, (69, 23)),
        (dict(max_epochs=3, accumulate_grad_batches=4), 23, (18, 6)),
        (dict(max_epochs=3, limit_train_batches=10), 23, (30, 10)),
        (dict(max_epochs=2, limit_train_batches=0.5), 23, (22, 11)),
        (dict(max_epochs=5, max_steps=40), 23, (40, 23)),
        (dict(max_epochs=-1, max_steps=-1), float("inf"), (None, None)),
        (dict(max_epochs=-1, max_steps=7), float("inf"), (7, None)),
    ],
)
def test_horizon_matches_lightning_rules(kw, batches, want) -> None:
    assert horizon_of(trainer(**kw), batches) == want


def test_schedule_command_prints_table_and_writes_png(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    png = tmp_path / "curve.png"
    code = main(["schedule", "-c", os.path.join(CONFIGS, "schedule_cosine.yaml"), "--png", str(png)])
    assert code == 0
    out = capsys.readouterr().out
    # 5 epochs of ceil(1438 / 64) = 23 batches; warm-up 5% = 6 steps; cosine to 10% of 3e-3
    assert "Schedule over 115 optimizer steps (23 per epoch)" in out
    sched = build_schedule(warmup_steps=6, total_steps=115, decay="cosine", min_lr_ratio=0.1)
    rows = {int(line.split()[0]): float(line.split()[1]) for line in out.splitlines()
            if line.strip() and line.split()[0].isdigit()}
    for step in (0, 6, 114, 115):
        assert rows[step] == pytest.approx(3e-3 * sched(step), rel=1e-4)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_schedule_command_without_warmup_decay_fails(tmp_path) -> None:
    config = tmp_path / "plain.yaml"
    config.write_text(
        "model:\n  class_path: lightning_optkit.demo.DigitsClassifier\n"
        "data:\n  class_path: lightning_optkit.demo.DigitsDataModule\n"
    )
    assert main(["schedule", "-c", str(config)]) == 2


def test_module_entry_point_help() -> None:
    out = subprocess.run([sys.executable, "-m", "lightning_optkit", "--help"], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert "schedule" in out
