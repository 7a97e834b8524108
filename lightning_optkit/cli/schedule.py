"""``lightning-optkit schedule``: preview the LR schedule of a LightningCLI config without training."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

__all__ = ["add_arguments", "run", "horizon_of", "schedule_callbacks"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument("--config", "-c", required=True, action="append",
                        help="LightningCLI config file(s) with a WarmupDecay callback (or OptKit)")
    parser.add_argument("--png", default=None, help="write a PNG of the curves here")
    parser.add_argument("--rows", type=int, default=30, help="about how many table rows to print")
    parser.add_argument("--total-steps", type=int, default=None,
                        help="override the horizon (optimizer steps) computed from the config")


def horizon_of(trainer: Any, num_batches: float) -> tuple[int | None, int | None]:
    """The trainer's optimizer-step horizon and steps per epoch for ``num_batches`` per epoch.

    Mirrors ``Trainer.estimated_stepping_batches``: ``limit_train_batches`` (int or fraction),
    gradient accumulation, ``max_epochs`` and ``max_steps``; ``None`` where it cannot be known.
    """
    limit = trainer.limit_train_batches
    if not math.isinf(num_batches):
        if isinstance(limit, int):
            num_batches = min(num_batches, limit)
        elif limit is not None:
            num_batches = int(num_batches * limit)
    accumulate = trainer.accumulate_grad_batches
    per_epoch = None if math.isinf(num_batches) else max(1, math.ceil(num_batches / accumulate))
    max_steps, max_epochs = trainer.max_steps, trainer.max_epochs
    candidates = []
    if max_steps is not None and max_steps != -1:
        candidates.append(max_steps)
    if per_epoch is not None and max_epochs is not None and max_epochs != -1:
        candidates.append(per_epoch * max(max_epochs, 1))
    return (min(candidates) if candidates else None), per_epoch


def _param_groups_of(model: Any) -> list[dict[str, Any]]:
    try:
        configured = model.configure_optimizers()
    except Exception:  # noqa: BLE001 - the model may need a trainer; fall back to multipliers
        return []
    while isinstance(configured, (list, tuple)) and configured:
        configured = configured[0]
    if isinstance(configured, dict):
        configured = configured.get("optimizer")
    return list(getattr(configured, "param_groups", []))


def _has_data_section(paths: list[str]) -> bool:
    """Whether any of the config files has a ``data:`` section (else the model brings its loaders)."""
    import yaml

    for path in paths:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle) or {}
        if isinstance(config, dict) and config.get("data") is not None:
            return True
    return False


def schedule_callbacks(callbacks: list[Any]) -> list[Any]:
    """The WarmupDecay callbacks among ``callbacks``, those inside an ``OptKit`` included."""
    from lightning_optkit.callbacks.optkit import OptKit
    from lightning_optkit.callbacks.warmup_decay import WarmupDecay

    found = []
    for callback in callbacks:
        parts = callback.callbacks if isinstance(callback, OptKit) else [callback]
        found.extend(part for part in parts if isinstance(part, WarmupDecay))
    return found


def run(args: argparse.Namespace) -> int:
    """Preview the LR schedule of a LightningCLI config (table and PNG) without training."""
    from unittest import mock

    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    from lightning_optkit.schedules.preview import format_rows

    cli_args = [arg for path in args.config for arg in ("--config", path)]
    data_class = LightningDataModule if _has_data_section(args.config) else None
    # the process's own arguments are this command's, not the config's: LightningCLI reads only ``args``
    with mock.patch.object(sys, "argv", sys.argv[:1]):
        cli = LightningCLI(LightningModule, data_class, subclass_mode_model=True,
                           subclass_mode_data=True, run=False, args=cli_args, save_config_callback=None)
    found = schedule_callbacks(cli.trainer.callbacks)
    if not found:
        print("No WarmupDecay callback (or OptKit with a schedule) in trainer.callbacks of the config.",
              file=sys.stderr)
        return 2
    total, per_epoch = args.total_steps, None
    if total is None:
        source = cli.datamodule if cli.datamodule is not None else cli.model
        if hasattr(source, "prepare_data"):
            source.prepare_data()
        if hasattr(source, "setup"):
            source.setup("fit")
        loader = source.train_dataloader()
        try:
            batches: float = len(loader)
        except TypeError:
            batches = math.inf
        total, per_epoch = horizon_of(cli.trainer, batches)
    groups = _param_groups_of(cli.model)
    bases = [float(g.get("lr", 1.0)) for g in groups] or [1.0]
    names = [str(g.get("name", f"pg{j + 1}")) for j, g in enumerate(groups)] or ["multiplier"]
    betas = groups[0].get("betas") if groups else None
    beta2 = float(betas[1]) if betas else 0.999
    rows = found[0].preview(total, steps_per_epoch=per_epoch, base_lrs=bases if groups else None, names=names,
                            beta2=beta2, path=args.png, max_rows=args.rows)
    print(f"Schedule over {total} optimizer steps ({per_epoch or '?'} per epoch):")
    print(format_rows(rows))
    if args.png:
        print(f"Wrote {args.png}")
    return 0
