"""The gate's fast path (one polars pass) skips pandera only when pandera would find nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from featurestore.dsl.checks import Gate, in_range, isin, max_null_fraction, min_rows, not_null
from featurestore.validation import gate as gate_module
from featurestore.validation.compile import compile_gate
from tests.validation.helpers import make_frame, make_spec

SPEC = make_spec(
    {"x": ("Float64", [in_range(0, 10)]), "s": ("String", [not_null(), isin(["a", "b"])])},
    gate=Gate(checks=[min_rows(2), max_null_fraction("x", 0.5)]),
)
FUTURE = datetime.now(UTC) + timedelta(days=3)

FRAMES: dict[str, Any] = {
    "all pass": make_frame(x=[1.0, 2.0, 3.0], s=["a", "b", "a"]),
    "out of range": make_frame(x=[1.0, 20.0, 3.0], s=["a", "b", "a"]),
    "not in set": make_frame(x=[1.0, 2.0, 3.0], s=["a", "c", "a"]),
    "a null value": make_frame(x=[1.0, None, 3.0], s=["a", "b", None]),
    "too few rows": make_frame(x=[1.0], s=["a"]),
    "null fraction": make_frame(x=[None, None, 3.0], s=["a", "b", "a"]),
    "duplicate key": pl.concat([make_frame(x=[1.0, 2.0], s=["a", "b"])] * 2),
    "from the future": make_frame(x=[1.0, 2.0], s=["a", "b"]).with_columns(
        pl.lit(FUTURE, dtype=pl.Datetime("us", "UTC")).alias("event_timestamp"), pl.Series("id", [7, 8])
    ),
    "wrong dtype": make_frame(x=[1, 2, 3], s=["a", "b", "a"]),
}


@pytest.mark.parametrize("case", list(FRAMES))
def test_fast_path_and_pandera_find_the_same_failures(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled, df = compile_gate(SPEC), FRAMES[case]
    fast = gate_module.find_failures(compiled, df)
    monkeypatch.setattr(gate_module, "_clearly_passes", lambda *_: False)
    full = gate_module.find_failures(compiled, df)
    assert fast.rows.sort(pl.all()).equals(full.rows.sort(pl.all()))
    assert fast.frame == full.frame
    assert (fast.rows.height == 0 and not fast.frame) == (case == "all pass")
