"""The package version, in one place (pyproject.toml reads it, the CLI, /health and OpenAPI show it)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
