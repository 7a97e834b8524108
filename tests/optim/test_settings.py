"""OptimizerSettings: AutoOptimizer's arguments, checked once, with no Trainer."""

from __future__ import annotations

import dataclasses

import pytest

from lightning_optkit.optim.settings import OptimizerSettings


def test_defaults_are_all_automatic() -> None:
    s = OptimizerSettings()
    assert (s.mode, s.candidates, s.lr, s.budget, s.lr_test, s.kernel, s.max_candidates) == (
        "auto", None, None, 0.05, "auto", "auto", 3)


def test_values_are_normalised_and_frozen() -> None:
    s = OptimizerSettings(candidates=["adamw", "sgd"], lr=1, budget=40, layer_decay=1)
    assert s.candidates == ("adamw", "sgd") and isinstance(s.lr, float) and s.lr == 1.0
    assert s.budget == 40.0 and s.layer_decay == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.lr = 0.1  # type: ignore[misc]
    assert OptimizerSettings(candidates=["adamw"]) == OptimizerSettings(candidates=("adamw",))


@pytest.mark.parametrize("arg,value", [
    ("mode", "fast"),
    ("lr_test", "sometimes"),
    ("kernel", "cuda"),
    ("lr", 0.0),
    ("lr", -1e-3),
    ("lr", "3e-4"),
    ("lr", float("nan")),
    ("weight_decay", -1.0),
    ("embedding_lr_mult", 0),
    ("layer_decay", 0.0),
    ("layer_decay", 2.0),
    ("budget", 0),
    ("budget", None),
    ("max_candidates", 0),
    ("max_candidates", 2.5),
    ("candidates", []),
    ("candidates", 5),
    ("budget", "5 percent"),
    ("budget", "-5%"),
    ("candidates", ["adamq"]),
])
def test_each_bad_value_names_its_argument(arg: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"^(candidates: name='adamq'|{arg}=)") as err:
        OptimizerSettings(**{arg: value})
    assert repr(value) in str(err.value) or "adamq" in str(err.value)


def test_choices_suggest_the_close_one() -> None:
    with pytest.raises(ValueError, match=r"mode='rule' is not one of 'auto', 'rules', 'race'; "
                                         r"did you mean mode='rules'\?"):
        OptimizerSettings(mode="rule")  # type: ignore[arg-type]


def test_a_missing_optional_package_is_an_import_error_too() -> None:
    from lightning_optkit.optim.registry import _REGISTRY, OptimizerInfo, register_optimizer

    register_optimizer(OptimizerInfo(name="ghost2", target="ghost_pkg_abc.Ghost",
                                     pip_package="ghost-pkg"))
    try:
        with pytest.raises(ImportError, match="candidates: .*pip install ghost-pkg"):
            OptimizerSettings(candidates=["ghost2"])
    finally:
        _REGISTRY.pop("ghost2")


def test_natural_spellings_are_accepted() -> None:
    assert OptimizerSettings(budget="5%").budget == pytest.approx(0.05)
    assert OptimizerSettings(budget=" 12.5% ").budget == pytest.approx(0.125)
    assert OptimizerSettings(candidates="adamw").candidates == ("adamw",)  # one name, not letters
