"""Model inspection and the family rules on typical model families."""

from __future__ import annotations

import importlib.util

import pytest
from torch import nn

from lightning_optkit.optim import ModelProfile, RunProfile, classify, inspect_model, rank_candidates
from lightning_optkit.optim.decide import budget_steps, plan_candidates, resolve_mode
from lightning_optkit.optim.rules import scale_lr_for_size
from lightning_optkit.optim.settings import OptimizerSettings
from tests.helpers.optim_models import (
    DENSE_FIRST,
    EmbeddingModel,
    Factorization,
    TinyLSTM,
    TinyTransformer,
    cnn_bn,
    mlp,
)

HAS_PRODIGY = importlib.util.find_spec("prodigyopt") is not None


def test_inspect_counts_the_building_blocks() -> None:
    p = inspect_model(TinyTransformer())
    assert p.attention_layers >= 1 and p.embedding_layers == 1 and p.num_frozen == 0
    assert p.num_params == sum(q.numel() for q in TinyTransformer().parameters())
    c = inspect_model(cnn_bn())
    assert (c.conv_layers, c.batchnorm_layers, c.linear_layers) == (1, 1, 1)
    assert inspect_model(TinyLSTM()).recurrent_layers == 1
    e = inspect_model(EmbeddingModel())
    assert e.embedding_layers == 2 and 0.75 < e.embedding_fraction < 0.95
    assert inspect_model(Factorization()).embedding_fraction == 1.0


@pytest.mark.parametrize("make,family,first,lr", [
    (mlp, "mlp", DENSE_FIRST, 1.0 if HAS_PRODIGY else 3e-3),
    (cnn_bn, "cnn_bn", "sgd", 0.1),
    (TinyTransformer, "transformer", DENSE_FIRST, 1.0 if HAS_PRODIGY else 3e-3),
    (TinyLSTM, "recurrent", "adamw", 1e-2),
    (EmbeddingModel, "embedding", "adamw", 3e-3),
])
def test_family_decisions(make, family: str, first: str, lr: float) -> None:
    fam, cands, reasons = rank_candidates(inspect_model(make()), RunProfile(batch_size=64))
    assert fam == family and cands[0].optimizer == first and cands[0].lr == pytest.approx(lr)
    assert reasons[0].startswith(f"family {family!r}")
    assert len({c.label for c in cands}) == len(cands) >= 2
    assert all(c.reason for c in cands)


def test_embedding_family_gets_a_tenfold_table_lr_and_cnn_sgd_has_nesterov() -> None:
    _, cands, _ = rank_candidates(inspect_model(EmbeddingModel()))
    assert cands[0].embedding_lr_mult == 10.0
    fam, cands, _ = rank_candidates(inspect_model(Factorization()))
    assert fam == "embedding" and (cands[0].lr, cands[0].embedding_lr_mult) == (1e-2, 1.0)
    assert cands[1].embedding_lr_mult == 10.0
    _, cands, _ = rank_candidates(inspect_model(cnn_bn()))
    assert cands[0].hparams == {"momentum": 0.9, "nesterov": True}
    assert "adamw" in [c.optimizer for c in cands]


def test_fine_tuning_is_detected_and_weak() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2))
    model[0].requires_grad_(False)
    fam, cands, _ = rank_candidates(inspect_model(model))
    assert fam == "fine_tune" and cands[0].lr_confidence == "weak" and cands[0].lr == 1e-3


def test_sgd_lr_scales_with_global_batch_and_adaptive_lr_with_size() -> None:
    _, cands, _ = rank_candidates(inspect_model(cnn_bn()), RunProfile(batch_size=256, world_size=4))
    assert cands[0].lr == pytest.approx(0.4)
    assert scale_lr_for_size(3e-3, 100_000_000) == pytest.approx(3e-4)
    assert scale_lr_for_size(3e-3, 10_000) == 3e-3


@pytest.mark.skipif(not HAS_PRODIGY, reason="prodigyopt missing")
def test_lr_free_candidates_join_where_installed() -> None:
    _, cands, _ = rank_candidates(inspect_model(cnn_bn()))
    assert "prodigy" in [c.optimizer for c in cands]
    _, cands, _ = rank_candidates(inspect_model(cnn_bn()), include_optional=False)
    assert "prodigy" not in [c.optimizer for c in cands]


@pytest.mark.parametrize("make", [mlp, cnn_bn, TinyTransformer, TinyLSTM, EmbeddingModel])
def test_three_distinct_candidates_without_optional_packages(make) -> None:
    from lightning_optkit.optim.registry import get_optimizer_info

    _, cands, _ = rank_candidates(inspect_model(make()), include_optional=False)
    cands = cands[:3]
    assert len({c.label for c in cands}) == 3
    assert all(get_optimizer_info(c.optimizer).pip_package is None for c in cands)


def test_allowed_restricts_and_orders_candidates() -> None:
    _, cands, reasons = rank_candidates(inspect_model(mlp()), allowed=["rmsprop", "sgd"])
    assert [c.optimizer for c in cands] == ["rmsprop", "sgd"]
    assert "restricted" in reasons[-1]


def test_plan_candidates_applies_user_values() -> None:
    settings = OptimizerSettings(lr=0.5, weight_decay=0.0, max_candidates=2,
                                 candidates=["sgd", "adamw"])
    fam, cands, reasons = plan_candidates(inspect_model(mlp()), RunProfile(), settings)
    assert len(cands) == 2 and all(c.lr == 0.5 and c.weight_decay == 0.0 for c in cands)
    assert "lr fixed by the user: 0.5" in reasons


def test_classify_prefers_recurrent_over_embeddings() -> None:
    assert classify(ModelProfile(num_params=10, recurrent_layers=1, embedding_layers=1,
                                 embedding_params=9))[0] == "recurrent"
    assert classify(ModelProfile(num_params=10, conv_layers=2))[0] == "cnn"


def test_budget_and_mode_resolution() -> None:
    assert budget_steps(0.05, 1000) == 50 and budget_steps(40, 1000) == 40
    assert budget_steps(0.05, None) is None
    with pytest.raises(ValueError, match=r"budget=2000 steps is not smaller than the run \(1000"):
        budget_steps(2000, 1000)
    assert resolve_mode("auto", 1000, 50, 3)[0] == "race"
    assert resolve_mode("auto", 100, 5, 3)[0] == "rules"
    assert resolve_mode("auto", None, None, 3)[0] == "rules"
    assert resolve_mode("rules", 1000, 50, 3)[0] == "rules"
    mode, why = resolve_mode("auto", 1000, 50, 3, num_params=10**9)
    assert mode == "rules" and "weight copy per candidate" in why
    assert resolve_mode("race", 1000, 50, 3, num_params=10**9)[0] == "race"
    with pytest.raises(ValueError, match=r"mode='race' needs a known horizon.*max_steps"):
        resolve_mode("race", None, None, 3)
    with pytest.raises(ValueError, match=r"budget=5 steps cannot race 3 candidates"):
        resolve_mode("race", 100, 5, 3)
    with pytest.raises(ValueError, match="at least two installed candidates"):
        resolve_mode("race", 1000, 50, 1)


def test_profile_flags_and_dict() -> None:
    p = inspect_model(cnn_bn())
    assert p.has_conv_bn and not p.has_attention and not p.has_recurrent and not p.has_embeddings
    d = inspect_model(TinyTransformer()).to_dict()
    assert d["has_attention"] and d["has_embeddings"] and d["fine_tuning"] is False
    assert ModelProfile(**{k: v for k, v in d.items() if k in ModelProfile.__dataclass_fields__}) \
        == inspect_model(TinyTransformer())
