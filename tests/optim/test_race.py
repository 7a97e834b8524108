"""Race bookkeeping (pure) and the race loop on a toy model."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from lightning_optkit.optim import RaceBook, clearly_worse, create_optimizer, is_diverged, plan_race
from lightning_optkit.optim.runner import run_race
from tests.helpers.optim_models import cycling, mse_step


def test_plan_caps_the_losers_cost() -> None:
    plan = plan_race(3, 64)
    assert plan.steps_per_candidate == 32 and plan.rungs == (8, 16, 32)
    assert (3 - 1) * plan.steps_per_candidate <= 64
    assert plan_race(2, 20).rungs == (10, 20)
    with pytest.raises(ValueError, match=r"budget=10 steps leaves 5 steps per candidate"):
        plan_race(3, 10)
    with pytest.raises(ValueError, match="at least two candidates"):
        plan_race(1, 100)


def test_divergence() -> None:
    assert is_diverged([1.0, float("nan")])
    assert is_diverged([1.0, 2.0, 8.0, 30.0])
    assert not is_diverged([1.0, 0.9, 3.0, 0.8])  # one spike is not divergence
    assert not is_diverged([])


def test_noise_aware_comparison() -> None:
    rng = random.Random(0)
    base = [1.0 - 0.01 * i for i in range(16)]
    noisy = [b + rng.gauss(0, 0.05) for b in base]
    tied = [b + rng.gauss(0, 0.05) for b in base]
    assert not clearly_worse(tied, noisy) and not clearly_worse(noisy, tied)
    worse = [b + 0.3 + rng.gauss(0, 0.05) for b in base]
    assert clearly_worse(worse, noisy) and not clearly_worse(noisy, worse)


def _book(labels: list[str]) -> RaceBook:
    return RaceBook(labels=labels, plan=plan_race(len(labels), 100), window=8)


def test_ties_keep_the_priors_first_choice() -> None:
    book = _book(["first", "second"])
    rng = random.Random(1)
    for i in range(16):
        batch_noise = rng.gauss(0, 0.2)  # the same batch for both: paired noise
        book.record("first", 1.0 - 0.01 * i + batch_noise + rng.gauss(0, 0.05))
        book.record("second", 0.99 - 0.01 * i + batch_noise + rng.gauss(0, 0.05))
    assert book.rung() == []
    assert book.winner() == "first"


def test_clear_separation_eliminates_at_most_half_and_picks_the_best() -> None:
    book = _book(["a", "b", "c", "d"])
    for i in range(8):
        for label, level in zip("abcd", (1.0, 0.5, 2.0, 2.5)):
            book.record(label, level + 0.01 * (i % 2))
    dropped = book.rung()
    assert dropped == ["d", "c"] and book.alive == ["a", "b"]
    assert "clearly behind b" in book.dropped["c"]
    assert book.winner() == "b"
    assert book.loser_steps("b") == 24


def test_diverging_candidate_is_dropped_at_once() -> None:
    book = _book(["a", "b"])
    assert book.record("a", 1.0) and book.record("a", float("inf")) is False
    assert book.alive == ["b"] and "diverged at step 2" in book.dropped["a"]
    assert book.summary("b")["dropped"] == book.dropped


def _setup() -> tuple[nn.Module, Callable[[], Any], Callable[..., float]]:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    data = [(torch.randn(16, 4), torch.randn(16, 1)) for _ in range(4)]
    return model, cycling(data), mse_step(model)


def test_run_race_keeps_the_winners_progress_and_drops_divergence() -> None:
    model, next_batch, step = _setup()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    builders = {
        "good": lambda: create_optimizer(model, "sgd", lr=0.05),
        "explodes": lambda: create_optimizer(model, "sgd", lr=50.0),
    }
    book, winner, opt = run_race(model, ["explodes", "good"], builders, step, next_batch,
                                 plan_race(2, 16))
    assert winner == "good" and "diverged" in book.dropped["explodes"]
    assert not torch.equal(model.weight, start["weight"])  # the winner's progress is kept
    assert opt is not None and len(opt.state) == 2  # with its momentum state
    assert book.loser_steps("good") <= 16


def test_run_race_all_diverged_restores_the_start() -> None:
    model, next_batch, step = _setup()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    builders = {n: (lambda: create_optimizer(model, "sgd", lr=1e3)) for n in ("a", "b")}
    book, winner, opt = run_race(model, ["a", "b"], builders, step, next_batch, plan_race(2, 16))
    assert winner is None and opt is None and not book.alive
    assert torch.equal(model.weight, start["weight"])


def test_hard_batches_that_lift_every_candidate_are_not_divergence() -> None:
    """Small-batch regression: per-batch losses swing 10x; both candidates see the same batches."""
    book = _book(["a", "b"])
    batch_scale = [4.8, 2.3, 13.0, 38.0, 30.0]
    for label, skill in (("a", 1.0), ("b", 1.1)):
        for scale in batch_scale:
            assert book.record(label, skill * scale)  # no explosion: nobody is dropped at once
    assert is_diverged(book.curves["a"]) and is_diverged(book.curves["b"])
    assert book.check_divergence() == [] and book.alive == ["a", "b"]


def test_a_rising_candidate_is_dropped_at_the_end_of_the_rung() -> None:
    book = _book(["calm", "rising"])
    for i in range(8):
        book.record("calm", 1.0 - 0.05 * i)
        book.record("rising", 1.0 + 1.5 * i)  # 11.5 at the end: risen, but not exploded
    assert book.alive == ["calm", "rising"]
    assert book.check_divergence() == ["rising"]
    assert book.alive == ["calm"] and "diverged by step 8" in book.dropped["rising"]
