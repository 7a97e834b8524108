"""The TF32 policy: decided from the capability, the user's wish and the current setting; applied
for one run and put back."""

from __future__ import annotations

import pytest
import torch

from lightning_optkit.precision.tf32 import Float32Policy, tf32_rule
from tests.helpers.precision_models import CPU_BF16, cuda_facts


@pytest.fixture(autouse=True)
def _keep_torch_settings():
    saved = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    yield
    torch.set_float32_matmul_precision(saved[0])
    torch.backends.cudnn.allow_tf32 = saved[1]


@pytest.mark.parametrize(("facts", "strict", "current", "setting"), [
    (cuda_facts(9, 0), False, "highest", "tf32"),
    (cuda_facts(8, 0), False, "highest", "tf32"),
    (cuda_facts(9, 0), True, "highest", "strict"),
    (cuda_facts(9, 0), False, "medium", None),  # the user's own setting is kept
    (cuda_facts(7, 5), False, "highest", None),  # no TF32 before Ampere
    (CPU_BF16, False, "highest", None),
])
def test_rule(facts, strict, current, setting) -> None:
    chosen, reason = tf32_rule(facts, strict_fp32=strict, matmul_precision=current)
    assert chosen == setting
    assert bool(reason) == (facts.device_type == "cuda" and facts.cuda_capability >= (8, 0))


def test_policy_applies_for_the_run_and_restores() -> None:
    torch.set_float32_matmul_precision("highest")
    policy = Float32Policy()
    reason = policy.apply(cuda_facts(9, 0))
    assert "TF32" in reason and torch.get_float32_matmul_precision() == "high"
    policy.restore()
    assert torch.get_float32_matmul_precision() == "highest"
    strict = Float32Policy(strict_fp32=True)
    torch.backends.cudnn.allow_tf32 = True
    assert strict.apply(cuda_facts(9, 0)).startswith("strict_fp32=True")
    assert torch.get_float32_matmul_precision() == "highest" and torch.backends.cudnn.allow_tf32 is False
    strict.restore()
    assert torch.backends.cudnn.allow_tf32 is True
    assert Float32Policy().apply(CPU_BF16) == "" and torch.get_float32_matmul_precision() == "highest"


def test_the_plugin_names_the_policy_and_restores_it_after_fit() -> None:
    from unittest import mock

    from lightning_optkit import AutoPrecision
    from tests.helpers.models import TinyModel, make_trainer

    torch.set_float32_matmul_precision("highest")
    seen = []

    class Spy(TinyModel):
        def training_step(self, batch, batch_idx):
            seen.append(torch.get_float32_matmul_precision())
            return super().training_step(batch, batch_idx)

    plugin = AutoPrecision("32-true", verbose=False)
    with mock.patch("lightning_optkit.plugins.auto_precision.plugin.probe_hardware", return_value=cuda_facts(9, 0)):
        make_trainer(plugins=[plugin], max_steps=2, max_epochs=None).fit(Spy())
    assert seen == ["high", "high"]
    assert any("TF32" in r for r in plugin.decision.reasons)
    assert torch.get_float32_matmul_precision() == "highest"
