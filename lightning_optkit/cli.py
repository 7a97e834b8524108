"""The ``lightning-optkit`` command line (``python -m lightning_optkit``).

Subcommands:
    schedule   preview the LR schedule of a LightningCLI config (table and PNG) without training.
    precision  show what AutoPrecision and the optimizer kernel choice would be on this machine.
    report     render a saved bottleneck JSON to the console, Markdown or HTML.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["main", "build_parser", "horizon_of"]

_AddArgs = Callable[[argparse.ArgumentParser], None]
_Run = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[_AddArgs, _Run]] = {}


def _command(name: str, add_args: Callable[[argparse.ArgumentParser], None]):
    def register(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        _COMMANDS[name] = (add_args, fn)
        return fn

    return register


# ---------------------------------------------------------------------------------------- schedule
def _schedule_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", required=True, action="append",
                        help="LightningCLI config file(s) with a WarmupDecay callback")
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


@_command("schedule", _schedule_args)
def _schedule(args: argparse.Namespace) -> int:
    """Preview the LR schedule of a LightningCLI config (table and PNG) without training."""
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    from lightning_optkit.callbacks.warmup_decay import WarmupDecay
    from lightning_optkit.schedules.preview import format_rows

    cli_args = [arg for path in args.config for arg in ("--config", path)]
    cli = LightningCLI(LightningModule, LightningDataModule, subclass_mode_model=True,
                       subclass_mode_data=True, run=False, args=cli_args, save_config_callback=None)
    found = [c for c in cli.trainer.callbacks if isinstance(c, WarmupDecay)]
    if not found:
        print("No WarmupDecay callback in trainer.callbacks of the config.", file=sys.stderr)
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
    rows = found[0].preview(total, steps_per_epoch=per_epoch, base_lrs=bases, names=names,
                            beta2=beta2, path=args.png, max_rows=args.rows)
    print(f"Schedule over {total} optimizer steps ({per_epoch or '?'} per epoch):")
    print(format_rows(rows))
    if args.png:
        print(f"Wrote {args.png}")
    return 0


# --------------------------------------------------------------------------------------- precision
def _precision_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cpu or cuda[:i] (default: cuda if available)")
    parser.add_argument("--no-measure", action="store_true", help="rules only, no timed steps")
    parser.add_argument("--width", type=int, default=512, help="width of the reference MLP")
    parser.add_argument("--batch", type=int, default=64, help="batch size of the timed steps")


@_command("precision", _precision_args)
def _precision(args: argparse.Namespace) -> int:
    """Show what AutoPrecision and the optimizer kernel choice would be on this machine."""
    import torch

    from lightning_optkit.cli_machine import kernel_report, precision_report

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    decision = precision_report(device=device, measure=not args.no_measure, width=args.width,
                                batch=args.batch)
    print(decision.summary())
    print(f"Optimizer kernels (seconds per step on a {args.width}-wide MLP):")
    for name, row in kernel_report(width=args.width, device=device).items():
        cells = ", ".join(f"{k} {v * 1e6:.0f} us" for k, v in row["seconds"].items())
        print(f"  {name}: {cells} -> {row['fastest']}")
    return 0


# ------------------------------------------------------------------------------------------ report
def _report_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("json", help="a bottlenecks.json written by BottleneckProfiler")
    parser.add_argument("--html", default=None, help="write the HTML report here")
    parser.add_argument("--md", default=None, help="write the Markdown report here")
    parser.add_argument("--plain", action="store_true", help="plain text even where rich is installed")


@_command("report", _report_args)
def _report(args: argparse.Namespace) -> int:
    """Render a saved bottleneck JSON to the console, Markdown or HTML."""
    import json

    from lightning_optkit.profiling import html, render
    from lightning_optkit._files import write_atomic

    try:
        with open(args.json, encoding="utf-8") as handle:
            report = json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        print(f"Cannot read {args.json}: {err}", file=sys.stderr)
        return 2
    if not isinstance(report, dict) or "findings" not in report or "step_time" not in report:
        print(f"{args.json} is not a BottleneckProfiler report (no findings/step_time)", file=sys.stderr)
        return 2
    render.print_console(report, use_rich=not args.plain)
    if args.html:
        write_atomic(args.html, html.to_html(report))
        print(f"Wrote {args.html}")
    if args.md:
        write_atomic(args.md, render.to_markdown(report))
        print(f"Wrote {args.md}")
    return 0


# ------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="lightning-optkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_args, fn) in _COMMANDS.items():
        doc = (fn.__doc__ or "").strip().splitlines()
        sub_parser = sub.add_parser(name, help=doc[0] if doc else None)
        add_args(sub_parser)
        sub_parser.set_defaults(_run=fn)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    return int(args._run(args))
