"""Train a small classifier on scikit-learn's digits through LightningCLI.

    python examples/train_digits.py fit --config examples/configs/demo.yaml

Any config in ``examples/configs/`` works the same way; every argument can also be given on the
command line (``--trainer.max_epochs 5``, ``--help``).
"""

from __future__ import annotations

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI


def main(args: list[str] | None = None) -> LightningCLI:
    """Run LightningCLI with any LightningModule / LightningDataModule given by class path."""
    cli = LightningCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=args,
    )
    if cli.subcommand == "fit" and cli.trainer.is_global_zero:
        metrics = cli.trainer.callback_metrics
        if "val_acc" in metrics:
            print(f"Final validation accuracy: {float(metrics['val_acc']):.4f}")
    return cli


if __name__ == "__main__":
    main()
