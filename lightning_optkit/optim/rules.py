"""Family rules: evidence-based priors that map a model (and run) to ranked optimizer candidates.

The priors come from published recipes and a time-to-target pilot on small CPU tasks:

* convolutions with BatchNorm: SGD with Nesterov momentum, lr ~0.1 (linear in batch above 256);
* attention / transformer blocks: AdamW-type methods, lr 3e-3 at small scale, shrinking with size;
  SGD fails there;
* recurrent layers: AdamW with a high lr (1e-2 at small scale) escapes plateaus others stall on;
* models dominated by embedding tables: AdamW with about 10x the dense lr on the tables; when the
  tables are the whole model (factorisation), one AdamW lr of 1e-2 (3e-2 overshoots there);
* plain MLPs: AdamW 3e-3 or SGD-Nesterov 0.1;
* fine-tuning (frozen parameters): AdamW 1e-3 (a weak prior: worth an LR test);
* where the learning-rate free Prodigy is installed it comes first for dense networks, CNNs
  without BatchNorm, fully convolutional BatchNorm networks (no dense head: autoencoders,
  segmentation, where SGD at lr 0.1 may not learn at all) and attention models: on the
  time-to-target benchmark it reached every target there, within 1.2x of the best fixed-lr
  recipe; it stays out of first place for embedding tables (it fails there) and recurrent nets
  (AdamW 1e-2 escapes their plateaus faster).

Each family lists more candidates than a race runs (``max_candidates``, 3 by default): the last
ones, usually the first choice at a lower lr, step in when an optional package is missing.

Everything here is plain Python on :class:`ModelProfile` / :class:`RunProfile` records.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from lightning_optkit.optim.inspect import ModelProfile, RunProfile
from lightning_optkit.optim.registry import get_optimizer_info, is_installed
from lightning_optkit.optim.spec import OptimizerSpec

__all__ = ["Family", "Candidate", "classify", "rank_candidates", "scale_lr_for_size"]

Family = Literal["fine_tune", "recurrent", "transformer", "embedding", "cnn_bn", "cnn", "mlp"]


@dataclass
class Candidate(OptimizerSpec):
    """One optimizer configuration proposed by the rules: an :class:`OptimizerSpec` with the
    evidence behind it.

    Attributes:
        lr_confidence: ``"strong"`` when the prior LR is well supported, ``"weak"`` when an LR
            range test is worth its cost.
        reason: Why this candidate is proposed.
    """

    lr_confidence: Literal["strong", "weak"] = "strong"
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


def classify(model: ModelProfile) -> tuple[Family, str]:
    """The model family that decides the priors, with the evidence for it."""
    if model.fine_tuning:
        share = model.num_frozen / (model.num_frozen + model.num_params)
        return "fine_tune", f"{share:.0%} of the parameters are frozen (fine-tuning)"
    if model.recurrent_layers:
        return "recurrent", f"{model.recurrent_layers} recurrent layer(s) (RNN/LSTM/GRU)"
    if model.attention_layers:
        return "transformer", f"{model.attention_layers} attention/transformer block(s)"
    if model.embedding_layers and model.embedding_fraction >= 0.25:
        return "embedding", (
            f"embedding tables hold {model.embedding_fraction:.0%} of the trainable parameters"
        )
    if model.conv_layers and model.batchnorm_layers:
        return "cnn_bn", (
            f"{model.conv_layers} convolution(s) with {model.batchnorm_layers} BatchNorm layer(s)"
        )
    if model.conv_layers:
        return "cnn", f"{model.conv_layers} convolution(s) without BatchNorm"
    return "mlp", f"dense layers only ({model.linear_layers} Linear)"


def scale_lr_for_size(lr: float, num_params: int, reference: int = 1_000_000,
                      floor: float = 1e-4) -> float:
    """Shrink an adaptive-method LR as ``sqrt(reference / num_params)`` above ``reference``."""
    if num_params <= reference:
        return lr
    return max(floor, lr * math.sqrt(reference / num_params))


def _sgd_lr(run: RunProfile) -> float:
    batch = (run.batch_size or 64) * max(1, run.world_size)
    return 0.1 * max(1.0, batch / 256.0)


def _prodigy_first(weight_decay: float, why: str) -> Candidate:
    """Prodigy at lr 1.0 (a multiplier), guarded against the warm-up inflating its estimate."""
    return Candidate("prodigy", 1.0, weight_decay, {"safeguard_warmup": True},
                     reason=f"learning-rate free Prodigy: {why}")


def _fully_convolutional(model: ModelProfile) -> bool:
    """Convolutions and no dense layer: the output is an image or a map, not class scores."""
    return model.conv_layers > 0 and model.linear_layers == 0


def _priors(family: Family, model: ModelProfile, run: RunProfile) -> list[Candidate]:
    n = model.num_params
    adam_lr = scale_lr_for_size
    if family == "cnn_bn" and _fully_convolutional(model):
        return [
            _prodigy_first(0.01, "no dense head (reconstruction or dense prediction), where "
                                 "SGD at lr 0.1 may not learn at all"),
            Candidate("adamw", adam_lr(3e-3, n), 0.01,
                      reason="a fully convolutional net (dense output): an adaptive method"),
            Candidate("sgd", _sgd_lr(run) / 3, 5e-4, {"momentum": 0.9, "nesterov": True},
                      reason="SGD-Nesterov at a third of the classifier lr"),
            Candidate("adamw", adam_lr(1e-3, n), 0.01, reason="a lower AdamW lr"),
        ]
    if family == "cnn_bn":
        return [
            Candidate("sgd", _sgd_lr(run), 5e-4, {"momentum": 0.9, "nesterov": True},
                      reason="BatchNorm CNNs train fastest with SGD-Nesterov at lr ~0.1"),
            Candidate("adamw", adam_lr(3e-3, n), 0.01, reason="AdamW is the robust runner-up"),
            Candidate("prodigy", 1.0, 0.01, lr_confidence="strong",
                      reason="learning-rate free alternative"),
            Candidate("sgd", _sgd_lr(run) / 3, 5e-4, {"momentum": 0.9, "nesterov": True},
                      reason="SGD-Nesterov at a third of the lr"),
        ]
    if family == "transformer":
        return [
            _prodigy_first(0.05, "matched or beat AdamW on attention models without an lr"),
            Candidate("adamw", adam_lr(3e-3, n), 0.05, {"betas": [0.9, 0.98]},
                      reason="attention blocks need an adaptive method; SGD fails on them"),
            Candidate("nadamw", adam_lr(3e-3, n), 0.05, {"betas": [0.9, 0.98]},
                      reason="NAdamW is the strongest tuned baseline on AlgoPerf"),
            Candidate("adamw", adam_lr(1e-3, n), 0.05, {"betas": [0.9, 0.98]},
                      reason="a safer AdamW lr for attention without warm-up"),
        ]
    if family == "recurrent":
        return [
            Candidate("adamw", adam_lr(1e-2, n, floor=1e-3), 0.01,
                      reason="recurrent nets escape loss plateaus with AdamW at a high lr"),
            Candidate("prodigy", 1.0, 0.01, reason="learning-rate free; also escaped the plateau"),
            Candidate("adamw", adam_lr(3e-3, n), 0.01, reason="a safer AdamW lr"),
            Candidate("nadamw", adam_lr(1e-2, n, floor=1e-3), 0.01,
                      reason="NAdamW at the high lr that escapes plateaus"),
        ]
    if family == "embedding" and model.embedding_fraction >= 0.95:
        return [
            Candidate("adamw", adam_lr(1e-2, n), 0.01,
                      reason="the tables are (almost) the whole model: AdamW at the table lr "
                             "1e-2 for all (tables multiplied together overshoot at 3e-2)"),
            Candidate("adamw", adam_lr(3e-3, n), 0.01, embedding_lr_mult=10.0,
                      reason="tables at 10x a dense lr of 3e-3"),
            Candidate("adamw", adam_lr(3e-3, n), 0.01, reason="a lower AdamW lr for all"),
        ]
    if family == "embedding":
        return [
            Candidate("adamw", adam_lr(3e-3, n), 0.01, embedding_lr_mult=10.0,
                      reason="embedding tables need ~10x the dense lr (sparse, rare updates)"),
            Candidate("adamw", adam_lr(1e-2, n), 0.01,
                      reason="one high AdamW lr for every parameter"),
            Candidate("adamw", adam_lr(1e-3, n), 0.01, embedding_lr_mult=10.0,
                      reason="a lower dense lr, tables still at 10x"),
        ]
    if family == "cnn":
        return [
            _prodigy_first(0.01, "the fastest on CNNs without normalisation"),
            Candidate("adamw", adam_lr(3e-3, n), 0.01,
                      reason="convolutions without normalisation: AdamW is the safer choice"),
            Candidate("sgd", _sgd_lr(run) / 2, 5e-4, {"momentum": 0.9, "nesterov": True},
                      lr_confidence="weak", reason="SGD-Nesterov, halved lr without BatchNorm"),
            Candidate("adamw", adam_lr(1e-3, n), 0.01, reason="a lower AdamW lr"),
        ]
    if family == "fine_tune":
        return [
            Candidate("adamw", adam_lr(1e-3, n, floor=1e-5), 0.01, lr_confidence="weak",
                      reason="fine-tuning: AdamW 1e-3 (3e-4 took 2.4x the steps of Adam 1e-3)"),
            Candidate("sgd", 0.01, 0.0, {"momentum": 0.9, "nesterov": True}, lr_confidence="weak",
                      reason="SGD-Nesterov at a small lr"),
            Candidate("adamw", adam_lr(3e-4, n, floor=1e-5), 0.01, lr_confidence="weak",
                      reason="AdamW at a third of the lr"),
        ]
    return [
        _prodigy_first(0.01, "the fastest on dense networks"),
        Candidate("adamw", adam_lr(3e-3, n), 0.01,
                  reason="dense networks: AdamW 3e-3 is fast and robust"),
        Candidate("sgd", _sgd_lr(run), 5e-4, {"momentum": 0.9, "nesterov": True},
                  reason="SGD-Nesterov 0.1 is as fast on well-scaled MLPs"),
        Candidate("adamw", adam_lr(1e-3, n), 0.01, reason="a lower AdamW lr"),
    ]


def rank_candidates(
    model: ModelProfile,
    run: RunProfile | None = None,
    allowed: list[str] | None = None,
    include_optional: bool = True,
) -> tuple[Family, list[Candidate], list[str]]:
    """Rank optimizer candidates for ``model``, best prior first.

    Args:
        model: The model profile.
        run: The run profile (batch size and world size scale the SGD lr).
        allowed: Registry names to choose from, in order of preference; a name the family priors
            do not cover is added with its own registry defaults and the family's AdamW lr.
        include_optional: Keep candidates whose optional package is installed.

    Returns:
        ``(family, candidates, reasons)``. Candidates whose package is missing are left out.
    """
    run = run or RunProfile()
    family, evidence = classify(model)
    reasons = [f"family {family!r}: {evidence}"]
    priors = [c for c in _priors(family, model, run)
              if include_optional and is_installed(get_optimizer_info(c.optimizer))
              or get_optimizer_info(c.optimizer).pip_package is None]
    if allowed:
        adaptive_lr = next((c.lr for c in priors if c.optimizer == "adamw"),
                           scale_lr_for_size(3e-3, model.num_params))
        ranked: list[Candidate] = []
        for name in allowed:
            info = get_optimizer_info(name)
            matches = [c for c in priors if c.optimizer == info.name]
            if matches:
                ranked.extend(matches)
            elif info.lr_free:
                ranked.append(Candidate(info.name, 1.0, 0.01, reason="requested (learning-rate free)"))
            elif info.momentum == "momentum" and info.name in ("sgd", "momentum"):
                ranked.append(Candidate(info.name, _sgd_lr(run), 5e-4, lr_confidence="weak",
                                        reason="requested; SGD lr from the batch-size rule"))
            else:
                lr = adaptive_lr / 3 if info.name == "lion" else adaptive_lr
                ranked.append(Candidate(info.name, lr, 0.01, lr_confidence="weak",
                                        reason="requested; lr of the family's AdamW prior"))
        priors = ranked
        reasons.append(f"candidates restricted to {allowed}")
    if model.fine_tuning:
        reasons.append("frozen parameters are left out of every group")
    if model.embedding_layers:
        mult = priors[0].embedding_lr_mult if priors else 1.0
        reasons.append(f"{model.embedding_layers} embedding table(s) in their own group "
                       f"(lr x{mult:g}, no weight decay)")
    return family, priors, reasons
