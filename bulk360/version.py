"""The package's version (``pyproject.toml`` reads it from here; every layer may import it)."""

__version__ = "0.2.0"
