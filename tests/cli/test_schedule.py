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


def _no_data_config(tmp_path, callbacks: str) -> str:
    config = tmp_path / "own_loaders.yaml"
    config.write_text(
        "trainer:\n  max_epochs: 2\n  logger: false\n  callbacks:\n" + callbacks
        + "model:\n  class_path: tests.helpers.models.TinyModel\n"
    )
    return str(config)


WARMUP_DECAY = "    - class_path: lightning_optkit.WarmupDecay\n      init_args:\n        warmup: 2\n"


def test_config_without_data_section_uses_the_models_loaders(tmp_path, capsys, monkeypatch) -> None:
    import warnings

    config = _no_data_config(tmp_path, WARMUP_DECAY)
    # the process's own arguments are not the config's: no LightningCLI `args` warning
    monkeypatch.setattr(sys, "argv", ["lightning-optkit", "schedule", "-c", config])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["schedule", "-c", config, "--rows", "4"]) == 0
    assert not [w for w in caught if "args parameter" in str(w.message)]
    out = capsys.readouterr().out
    # TinyModel: 64 samples in batches of 8 = 8 steps per epoch, 2 epochs; two groups at lr 1e-2
    assert "Schedule over 16 optimizer steps (8 per epoch)" in out
    assert out.splitlines()[1].split() == ["step", "pg1", "pg2"]


def test_schedule_command_finds_warmup_decay_inside_optkit(tmp_path, capsys) -> None:
    optkit = ("    - class_path: lightning_optkit.OptKit\n      init_args:\n        optimizer: false\n"
              "        precision: false\n        profiler: false\n        schedule:\n"
              "          warmup: 4\n          decay: linear\n")
    assert main(["schedule", "-c", _no_data_config(tmp_path, optkit), "--rows", "4"]) == 0
    rows = {int(line.split()[0]): float(line.split()[1]) for line in capsys.readouterr().out.splitlines()
            if line.strip() and line.split()[0].isdigit()}
    assert rows[4] == pytest.approx(1e-2) and rows[15] == pytest.approx(0.0, abs=1e-12)


def test_readme_demo_config_previews(capsys) -> None:
    assert main(["schedule", "-c", os.path.join(CONFIGS, "demo.yaml"), "--rows", "4"]) == 0
    out = capsys.readouterr().out
    assert "Schedule over " in out and "multiplier" in out


def _capture_plot(monkeypatch) -> dict:
    import matplotlib.figure

    seen: dict = {}

    def savefig(fig, path, *a, **k) -> None:
        ax = fig.axes[0]
        seen.update(ylabel=ax.get_ylabel(), lines=[(ln.get_label(), ln.get_linestyle(), ln.get_marker())
                                                   for ln in ax.get_lines() if not ln.get_label().startswith("_")])
        open(path, "wb").write(b"\x89PNG")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    return seen


def test_png_of_equal_lr_groups_shows_every_curve(tmp_path, monkeypatch) -> None:
    seen = _capture_plot(monkeypatch)
    png = tmp_path / "groups.png"
    assert main(["schedule", "-c", _no_data_config(tmp_path, WARMUP_DECAY), "--png", str(png)]) == 0
    assert seen["ylabel"] == "learning rate"
    (l1, s1, m1), (l2, s2, m2) = seen["lines"][:2]
    assert (l1, l2) == ("pg1", "pg2 (= pg1)") and s1 != s2 and m1 != m2


def test_png_of_multipliers_is_labelled_so(tmp_path, monkeypatch) -> None:
    from lightning_optkit import WarmupDecay

    seen = _capture_plot(monkeypatch)
    WarmupDecay(warmup=2).preview(20, path=str(tmp_path / "m.png"))
    assert seen["ylabel"].startswith("LR multiplier")
    WarmupDecay(warmup=2).preview(20, base_lrs=[0.1], path=str(tmp_path / "lr.png"))
    assert seen["ylabel"] == "learning rate"
