"""The decision record: JSON round trip, printout, flat hyperparameters."""

from __future__ import annotations

import json

from lightning_optkit.optim import Choice, flat_hparams, format_choice
from lightning_optkit.optim.decide import plan_candidates, rules_choice
from lightning_optkit.optim.inspect import RunProfile, inspect_model
from tests.helpers.optim_models import cnn_bn


def _choice() -> Choice:
    profile, run = inspect_model(cnn_bn()), RunProfile(horizon=1000, batch_size=64)
    family, cands, reasons = plan_candidates(profile, run)
    return rules_choice(family, cands, reasons, profile, run)


def test_rules_choice_and_json_round_trip() -> None:
    choice = _choice()
    assert (choice.optimizer, choice.lr, choice.family) == ("sgd", 0.1, "cnn_bn")
    assert choice.hparams == {"momentum": 0.9, "nesterov": True}
    assert choice.candidates[0]["label"] == "sgd@1e-01"
    data = json.loads(json.dumps(choice.to_dict()))
    assert Choice.from_dict(data) == choice
    assert Choice.from_dict({**data, "unknown_key": 1}) == choice


def test_printout_and_hparams() -> None:
    choice = _choice()
    choice.race = {"rungs": [8, 16], "budget": 32, "winner": "sgd@1e-01", "loser_steps": 24,
                   "dropped": {"adamw@3e-03": "clearly behind"},
                   "curves": {"sgd@1e-01": [2.0, 1.0], "adamw@3e-03": [2.0, 1.5]}}
    choice.groups = [{"name": "decay", "tensors": 2, "numel": 100, "weight_decay": 5e-4,
                      "lr_mult": 1.0, "lr": 0.1}]
    text = format_choice(choice)
    assert text.splitlines()[0].startswith("AutoOptimizer (rules): sgd lr=0.1")
    assert "winner sgd@1e-01, losers' cost 24 steps (budget 32)" in text
    assert "adamw@3e-03" in text and "clearly behind" in text and "group decay" in text
    flat = flat_hparams(choice)
    assert flat["auto_optimizer/optimizer"] == "sgd" and flat["auto_optimizer/momentum"] == 0.9
    assert all(not isinstance(v, (list, dict)) for v in flat.values())
