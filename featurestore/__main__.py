"""``python -m featurestore``: the same as the ``featurestore`` command."""

from featurestore.cli.main import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
