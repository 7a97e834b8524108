"""Lightning glue: one public callback per subpackage (or module). Import them from ``lightning_optkit``."""

__all__: list[str] = []
