"""The registry drives these tests: every registered, installed optimizer builds and steps."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from lightning_optkit.optim import (
    OPTIMIZERS,
    OptimizerInfo,
    create_optimizer,
    get_optimizer_info,
    list_optimizers,
    register_optimizer,
    resolve_optimizer_class,
)
from lightning_optkit.optim.registry import MissingOptimizerPackage, _REGISTRY
from tests.helpers.optim_models import AllNorms


@pytest.mark.parametrize("name", list_optimizers())
def test_every_registered_optimizer_builds_and_steps(name: str) -> None:
    assert OPTIMIZERS[name] is get_optimizer_info(name)
    info = get_optimizer_info(name)
    if not info.installed:
        pytest.skip(f"{info.pip_package} not installed")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 1))
    lr = 1.0 if info.lr_free else 1e-2
    opt = create_optimizer(model, name, lr=lr, weight_decay=0.01)
    assert isinstance(opt, resolve_optimizer_class(name))
    assert {g["name"] for g in opt.param_groups} == {"decay", "no_decay"}
    if info.needs_train_eval:
        opt.train()
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    for key, value in info.defaults.items():
        assert opt.param_groups[0][key] == value


@pytest.mark.parametrize("name", [n for n in list_optimizers() if get_optimizer_info(n).fused])
@pytest.mark.parametrize("kernel", ["fused", "foreach", "for-loop"])
def test_kernel_flags_reach_the_optimizer(name: str, kernel: str) -> None:
    model = nn.Linear(4, 2)
    opt = create_optimizer(model, name, lr=1e-2, kernel=kernel)
    group = opt.param_groups[0]
    assert bool(group.get("fused")) is (kernel == "fused")
    assert bool(group.get("foreach")) is (kernel == "foreach")


def test_list_optimizers_wildcards() -> None:
    assert list_optimizers("adam*") == ["adam", "adamax", "adamw"]
    assert list_optimizers("sgd,nadam*") == ["nadam", "nadamw", "sgd"]
    assert "rmsprop" in list_optimizers() and "adagrad" in list_optimizers()
    assert list_optimizers("nothing*") == []
    installed = list_optimizers(installed_only=True)
    assert all(get_optimizer_info(n).installed for n in installed)


def test_nadamw_is_nadam_with_decoupled_decay() -> None:
    opt = create_optimizer(nn.Linear(2, 2), "nadamw", lr=1e-3, weight_decay=0.1)
    assert isinstance(opt, torch.optim.NAdam)
    assert opt.param_groups[0]["decoupled_weight_decay"] is True
    assert get_optimizer_info("sgd").defaults["nesterov"] is True


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"name='adamq' is not one of .*adamw.*sgd.*did you mean name='adam'"):
        create_optimizer(nn.Linear(2, 2), "adamq")


def test_missing_package_names_the_pip_package() -> None:
    info = register_optimizer(OptimizerInfo(
        name="fake_opt", target="surely_not_installed_pkg.Opt", pip_package="surely-not-installed"))
    try:
        assert not info.installed
        with pytest.raises(ImportError, match="pip install surely-not-installed"):
            resolve_optimizer_class("fake_opt")
        with pytest.raises(MissingOptimizerPackage):
            create_optimizer(nn.Linear(2, 2), "fake_opt")
        assert "fake_opt" not in list_optimizers(installed_only=True)
    finally:
        _REGISTRY.pop("fake_opt")


def test_register_refuses_a_taken_name() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_optimizer(OptimizerInfo(name="adamw", target="torch.optim.AdamW"))


def test_records_are_frozen_and_serialisable() -> None:
    info = get_optimizer_info("adamw")
    with pytest.raises(Exception):
        info.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        info.defaults["x"] = 1  # type: ignore[index]
    assert info.to_dict()["decoupled_weight_decay"] is True


@pytest.mark.skipif(importlib.util.find_spec("prodigyopt") is None, reason="prodigyopt missing")
def test_prodigy_is_lr_free() -> None:
    assert get_optimizer_info("prodigy").lr_free
    opt = create_optimizer(AllNorms(), "prodigy", lr=1.0)
    assert type(opt).__name__ == "Prodigy"


def test_create_optimizer_from_parameter_list_and_bad_values() -> None:
    model = nn.Linear(3, 3)
    opt = create_optimizer(model.parameters(), "sgd", lr=0.1, weight_decay=1e-4)
    assert opt.param_groups[0]["name"] == "all" and opt.param_groups[0]["weight_decay"] == 1e-4
    with pytest.raises(ValueError, match=r"lr=0 is not allowed"):
        create_optimizer(model, "adamw", lr=0)
    with pytest.raises(ValueError, match=r"embedding_lr_mult=-1"):
        create_optimizer(model, "adamw", embedding_lr_mult=-1)
