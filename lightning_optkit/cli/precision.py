"""``lightning-optkit precision``: what AutoPrecision and the optimizer kernel choice would be here."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options."""
    parser.add_argument("--device", default=None, help="cpu or cuda[:i] (default: cuda if available)")
    parser.add_argument("--no-measure", action="store_true", help="rules only, no timed steps")
    parser.add_argument("--width", type=int, default=512, help="width of the reference MLP")
    parser.add_argument("--batch", type=int, default=64, help="batch size of the timed steps")


def run(args: argparse.Namespace) -> int:
    """Show what AutoPrecision and the optimizer kernel choice would be on this machine."""
    import torch

    from lightning_optkit.cli.machine import kernel_report, precision_report

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    decision = precision_report(device=device, measure=not args.no_measure, width=args.width,
                                batch=args.batch)
    print(decision.summary())
    print(f"Optimizer kernels (seconds per step on a {args.width}-wide MLP):")
    for name, row in kernel_report(width=args.width, device=device).items():
        cells = ", ".join(f"{k} {v * 1e6:.0f} us" for k, v in row["seconds"].items())
        print(f"  {name}: {cells} -> {row['fastest']}")
    return 0
