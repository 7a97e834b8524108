"""Lightning glue: one callback per module. Import them from ``lightning_optkit``."""

__all__: list[str] = []
