"""Parameter-group rules on a model with every norm type, embeddings and no_weight_decay()."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_optkit.optim import create_optimizer, describe_groups, is_norm_module, param_groups
from tests.helpers.optim_models import AllNorms


def _names(model: nn.Module, group: dict) -> set[str]:
    ids = {id(p) for p in group["params"]}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_every_norm_bias_and_1d_param_skips_decay() -> None:
    model = AllNorms()
    groups = {g["name"]: g for g in param_groups(model, weight_decay=0.1, lr=1e-3,
                                                 embedding_lr_mult=10.0)}
    assert set(groups) == {"decay", "no_decay", "embedding"}
    assert _names(model, groups["decay"]) == {"conv.weight", "lin.weight"}
    assert _names(model, groups["embedding"]) == {"emb.weight"}
    no_decay = _names(model, groups["no_decay"])
    for norm in ("bn1", "bn2", "bn3", "gn", "ln", "inorm"):
        assert {f"{norm}.weight", f"{norm}.bias"} <= no_decay
    assert {"rms.weight", "conv.bias", "lin.bias", "scale", "pos"} <= no_decay
    assert groups["decay"]["weight_decay"] == 0.1
    assert groups["no_decay"]["weight_decay"] == 0.0 and groups["embedding"]["weight_decay"] == 0.0
    assert groups["embedding"]["lr"] == pytest.approx(1e-2)
    assert groups["decay"]["lr"] == 1e-3
    total = sum(len(g["params"]) for g in groups.values())
    assert total == len(list(model.parameters()))


def test_norm_detection_by_type_and_name() -> None:
    class MyNorm(nn.Module):
        pass

    assert is_norm_module(nn.SyncBatchNorm(3)) and is_norm_module(MyNorm())
    assert not is_norm_module(nn.Linear(2, 2))


def test_frozen_parameters_are_left_out() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    groups = param_groups(model, weight_decay=0.1)
    params = [p for g in groups for p in g["params"]]
    assert len(params) == 2 and all(p.requires_grad for p in params)
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        param_groups(model)


def test_layer_decay_scales_earlier_layers() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2))
    groups = {g["name"]: g for g in param_groups(model, lr=1.0, layer_decay=0.5)}
    assert groups["layer_2.decay"]["lr"] == 1.0
    assert groups["layer_1.decay"]["lr"] == 0.5
    assert groups["layer_0.decay"]["lr"] == 0.25
    assert groups["layer_0.no_decay"]["lr"] == 0.25


def test_layer_decay_follows_numbered_blocks() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Linear(2, 2)
            self.blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
            self.head = nn.Linear(2, 2)

    groups = param_groups(Net(), lr=1.0, layer_decay=0.5)
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs["layer_4.decay"] == 1.0 and lrs["layer_0.decay"] == 0.5 ** 4
    assert lrs["layer_2.decay"] == 0.25


@pytest.mark.parametrize("kwargs,match", [
    (dict(embedding_lr_mult=0.0), r"embedding_lr_mult=0.0 is not allowed: .* \(0.0, inf\)"),
    (dict(lr=-1.0), r"lr=-1.0 is not allowed: .* \(0.0, inf\)"),
    (dict(layer_decay=1.5), r"layer_decay=1.5 is not allowed: .* \(0.0, 1.0\]"),
    (dict(weight_decay=-0.1), r"weight_decay=-0.1 is not allowed: .* \[0.0, inf\)"),
])
def test_bad_values_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        param_groups(AllNorms(), **kwargs)


def test_groups_flow_into_the_optimizer_and_describe() -> None:
    model = AllNorms()
    opt = create_optimizer(model, "adamw", lr=2e-3, weight_decay=0.05, embedding_lr_mult=10)
    rows = {r["name"]: r for r in describe_groups(opt.param_groups)}
    assert rows["embedding"]["lr"] == pytest.approx(2e-2)
    assert rows["decay"]["numel"] == model.conv.weight.numel() + model.lin.weight.numel()
    assert all(g["lr"] > 0 for g in opt.param_groups)


def test_shared_parameters_appear_once() -> None:
    emb = nn.Embedding(5, 4)
    head = nn.Linear(4, 5, bias=False)
    head.weight = emb.weight
    model = nn.ModuleDict({"emb": emb, "head": head})
    groups = param_groups(model)
    assert sum(len(g["params"]) for g in groups) == 1
    torch.optim.AdamW(groups)  # torch refuses duplicated parameters
