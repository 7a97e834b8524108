"""The demo task: a small classifier on scikit-learn's bundled digits data set."""

from lightning_optkit.demo.digits import DigitsClassifier, DigitsDataModule

__all__ = ["DigitsClassifier", "DigitsDataModule"]
