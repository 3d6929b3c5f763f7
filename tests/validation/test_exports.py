"""The check vocabulary is part of the public API, and the validation facade is short."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import polars as pl

import featurestore
import featurestore.dsl
import featurestore.validation
from featurestore.validation.profile import load_baseline, profile_view
from tests.validation.helpers import make_frame, make_spec

VOCABULARY = {
    "Gate",
    "Drift",
    "not_null",
    "in_range",
    "greater_than",
    "greater_than_or_equal_to",
    "less_than",
    "less_than_or_equal_to",
    "isin",
    "not_in",
    "matches",
    "str_length",
    "unique",
    "expr",
    "min_rows",
    "max_null_fraction",
    "frame_expr",
}


def test_vocabulary_is_exported() -> None:
    assert VOCABULARY <= set(featurestore.__all__)
    assert VOCABULARY <= set(featurestore.dsl.__all__)
    assert {"gate_for", "list_reports", "GateResult", "validate_frame"} <= set(featurestore.validation.__all__)


def test_profile_from_a_saved_training_set(tmp_path: Path) -> None:
    spec = make_spec({"v": ("Float64", []), "c": ("String", [])}, name="p")
    saved = tmp_path / "train.parquet"
    make_frame(p__v=[1.0, 2.0, None, 4.0], c=["a", "a", "b", None]).write_parquet(saved)
    settings = SimpleNamespace(offline_root=tmp_path / "offline")
    profile = profile_view(settings.offline_root, spec, [], training_set=saved)
    v = profile["features"]["v"]
    assert (v["min"], v["max"], v["null_fraction"]) == (1.0, 4.0, 0.25)
    assert profile["features"]["c"]["top"][:2] == [["a", 2], ["b", 1]]
    stored = load_baseline(settings.offline_root, "p", "test0001")
    assert stored is not None and stored["rows"] == 4
    assert pl.read_parquet(saved).height == 4
