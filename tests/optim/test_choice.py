"""The decision record: JSON round trip, printout, flat hyperparameters."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from lightning_optkit.optim import Candidate, Choice, OptimizerSpec, flat_hparams, format_choice
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
    assert str(choice) == text and f"{choice}" == text  # print(callback.choice) explains
    assert repr(choice).startswith("Choice(")
    assert text.splitlines()[0].startswith("AutoOptimizer (rules): sgd lr=0.1")
    assert "winner sgd@1e-01, losers' cost 24 steps (budget 32)" in text
    assert "adamw@3e-03" in text and "clearly behind" in text and "group decay" in text
    flat = flat_hparams(choice)
    assert flat["auto_optimizer/optimizer"] == "sgd" and flat["auto_optimizer/momentum"] == 0.9
    assert all(not isinstance(v, (list, dict)) for v in flat.values())


def test_the_choice_dict_of_a_0_1_checkpoint_round_trips_unchanged() -> None:
    import torch

    path = Path(__file__).resolve().parents[1] / "fixtures" / "optkit_v0_1.ckpt"
    saved = torch.load(path, weights_only=False)["callbacks"]["AutoOptimizer"]["choice"]
    again = Choice.from_dict(saved).to_dict()
    assert again == saved and list(again) == list(saved)  # same keys, same order


def test_candidate_and_choice_share_the_optimizer_spec() -> None:
    spec_names = [f.name for f in fields(OptimizerSpec)]
    assert [f.name for f in fields(Candidate)][:len(spec_names)] == spec_names
    assert [f.name for f in fields(Choice)][:len(spec_names)] == spec_names
    cand = Candidate("sgd", 0.1, 5e-4, {"momentum": 0.9}, reason="r", lr_confidence="weak")
    assert cand.label == "sgd@1e-01" and cand.with_lr(0.2).lr == 0.2 and cand.lr == 0.1
    assert cand.to_dict()["lr_confidence"] == "weak" and Candidate.from_dict(cand.to_dict()) == cand


def test_with_spec_is_a_deep_copy_and_keeps_timings_only_for_the_same_optimizer() -> None:
    choice = _choice()
    choice.kernel_times_us = {"fused": 1.0}
    same = choice.with_spec(Candidate("sgd", 0.03, 0.0, {"momentum": 0.5}), "foreach")
    other = choice.with_spec(Candidate("adamw", 1e-3), "fused")
    assert (same.lr, same.kernel, same.hparams, same.kernel_times_us) == (
        0.03, "foreach", {"momentum": 0.5}, {"fused": 1.0})
    assert other.optimizer == "adamw" and other.kernel_times_us == {} and other.hparams == {}
    same.reasons.append("only here")
    assert "only here" not in choice.reasons and choice.lr == 0.1


def test_build_creates_the_optimizer_and_records_its_groups() -> None:
    model = cnn_bn()
    choice = _choice()
    choice.kernel = "for-loop"
    opt = choice.build(model)
    assert type(opt).__name__ == "SGD" and opt.param_groups[0]["nesterov"] is True
    assert [g["name"] for g in choice.groups] == [g["name"] for g in opt.param_groups]
    assert sum(g["tensors"] for g in choice.groups) == len(list(model.parameters()))
