"""Pure optimizer machinery: registry, parameter groups, model inspection, family rules, the
user's settings, the plan made before training, race bookkeeping, the LR range test and kernel
timing. No Lightning import anywhere: the ``AutoOptimizer`` callback wires these to Lightning's
hooks, and everything here works in plain PyTorch too.
"""

from lightning_optkit.optim.choice import Choice, flat_hparams, format_choice
from lightning_optkit.optim.decide import Plan, make_plan
from lightning_optkit.optim.factory import build_optimizer, create_optimizer, kernel_kwargs
from lightning_optkit.optim.groups import NORM_TYPES, describe_groups, is_norm_module, param_groups
from lightning_optkit.optim.inspect import ModelProfile, RunProfile, inspect_model
from lightning_optkit.optim.lr_test import LRTestResult, suggest_lr, sweep_lrs
from lightning_optkit.optim.race import RaceBook, RacePlan, clearly_worse, is_diverged, plan_race
from lightning_optkit.optim.registry import (
    OPTIMIZERS,
    MissingOptimizerPackage,
    OptimizerInfo,
    get_optimizer_info,
    list_optimizers,
    register_optimizer,
    resolve_optimizer_class,
)
from lightning_optkit.optim.rules import Candidate, classify, rank_candidates
from lightning_optkit.optim.settings import OptimizerSettings
from lightning_optkit.optim.spec import OptimizerSpec

__all__ = [
    "Candidate",
    "Choice",
    "LRTestResult",
    "ModelProfile",
    "MissingOptimizerPackage",
    "NORM_TYPES",
    "OPTIMIZERS",
    "OptimizerInfo",
    "OptimizerSettings",
    "OptimizerSpec",
    "Plan",
    "RaceBook",
    "RacePlan",
    "RunProfile",
    "build_optimizer",
    "classify",
    "clearly_worse",
    "create_optimizer",
    "describe_groups",
    "flat_hparams",
    "format_choice",
    "get_optimizer_info",
    "inspect_model",
    "is_diverged",
    "is_norm_module",
    "kernel_kwargs",
    "list_optimizers",
    "make_plan",
    "param_groups",
    "plan_race",
    "rank_candidates",
    "register_optimizer",
    "resolve_optimizer_class",
    "suggest_lr",
    "sweep_lrs",
]
