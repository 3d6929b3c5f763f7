"""The featurestore command line (typer): argument parsing here, logic in the store."""

__all__: list[str] = []
