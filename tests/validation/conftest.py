"""Fixtures for the gate tests: settings with an offline root and a small repository."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from tests.validation.helpers import BAD, VIEWS, source_frame


@pytest.fixture
def settings(tmp_path: Path) -> SimpleNamespace:
    return SimpleNamespace(offline_root=tmp_path / "offline")


@pytest.fixture
def gated_repo(make_repo: Callable[..., Path]) -> Callable[..., Path]:
    """A repository whose view ``items`` has the given Gate arguments and source rows."""

    def factory(gate: str = "", frame: pl.DataFrame | None = None, name: str = "repo") -> Path:
        repo = make_repo({"views.py": VIEWS.format(gate=gate)}, name=name)
        (repo / "data").mkdir(exist_ok=True)
        (frame if frame is not None else source_frame(bad=BAD)).write_parquet(repo / "data" / "src.parquet")
        return repo

    return factory
