"""With ``Trainer(deterministic=True)`` no timing decides: two identical runs train alike."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_optkit import AutoOptimizer
from lightning_optkit.optim import runner as runner_module
from lightning_optkit.optim.runner import choose_kernels
from tests.helpers.models import make_trainer
from tests.helpers.optim_models import NoOptimizerModel


class _ConvNet(NoOptimizerModel):
    """A BatchNorm CNN classifier: the rules pick SGD-Nesterov, checked by the safety net."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Unflatten(1, (1, 2, 4)), nn.Conv2d(1, 4, 3, padding=1),
                                 nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(32, 4))


def _fit(deterministic: bool) -> tuple[AutoOptimizer, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = _ConvNet()
    cb = AutoOptimizer(save_json=False, verbose=False)
    make_trainer(max_steps=130, max_epochs=None, callbacks=[cb],
                 deterministic=deterministic).fit(model)
    return cb, {k: v.clone() for k, v in model.state_dict().items()}


def test_rule_kernels_are_not_timed(monkeypatch) -> None:
    def no_timing(*args, **kwargs):
        raise AssertionError("timed although timed=False")

    monkeypatch.setattr(runner_module, "measure_kernels", no_timing)
    params = [torch.zeros(3, requires_grad=True)]
    kernels, times = choose_kernels(params, ["adamw", "nadamw", "adamax"], timed=False)
    assert kernels == {"adamw": "fused", "nadamw": "foreach", "adamax": "foreach"} and times == {}


@pytest.mark.slow
def test_two_deterministic_runs_choose_and_train_identically(monkeypatch) -> None:
    calls = []
    real = runner_module.measure_kernels
    monkeypatch.setattr(runner_module, "measure_kernels",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    first, weights_a = _fit(deterministic=True)
    second, weights_b = _fit(deterministic=True)
    assert calls == []  # no kernel was timed
    assert first.choice.to_dict() | {"overhead_seconds": 0} == \
        second.choice.to_dict() | {"overhead_seconds": 0}
    assert first.choice.race is not None  # the safety net raced SGD against AdamW
    assert first.choice.kernel == "fused"
    assert any("chosen by rule, not timed: the run is deterministic" in r
               for r in first.choice.reasons)
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    _fit(deterministic=False)
    assert calls  # without deterministic=True the kernels are timed
