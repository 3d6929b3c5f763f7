"""JSON values of mixed kinds in one pushed column are typed value by value, as when they come alone."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from featurestore import FeatureStore
from featurestore.errors import InvalidRequestError
from tests.test_materialize import build

WHEN = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0).isoformat()


def _rows(n: int = 40) -> list[dict[str, Any]]:
    return [{"driver_id": 500 + i, "event_timestamp": WHEN, "a": 0.5, "b": i, "s": "ok"} for i in range(n)]


def _offline(root: Any) -> pl.DataFrame:
    files = sorted((root / "data" / "offline" / "stats").glob("v=*/date=*/*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed").filter(pl.col("driver_id") >= 500)


@pytest.mark.parametrize(
    ("column", "bad"),
    [
        ("b", True),  # read as 1 by polars among integers; alone it fails Int64
        ("a", False),  # read as 0.0 among floats
        ("a", [1.0]),  # a list among floats: the batch was refused as "rows are not a table"
        ("b", {"k": 1}),  # an object among integers
        ("s", ["x"]),  # a list among strings
        ("a", [1, "x"]),  # a list of mixed elements
    ],
)
def test_a_value_of_another_kind_fails_its_row_only(make_repo: Any, column: str, bad: Any) -> None:
    root = build(make_repo, "sqlite:///data/online.db")
    store = FeatureStore(root)
    rows = _rows()
    rows[7][column] = bad
    pushed = copy.deepcopy(rows)
    result = store.push("stats", rows, to_offline=True)
    assert rows == pushed  # the caller's rows are left as they were
    assert result.gate.status == "quarantined" and result.gate.rows_quarantined == 1, result.gate.message
    assert result.gate.failures[f"{column}: dtype"]["count"] == 1
    online = store.get_online_features(["stats:b"], {"driver_id": [500 + i for i in range(40)]}).to_dict()["b"]
    assert online[7] is None and [b for i, b in enumerate(online) if i != 7] == [i for i in range(40) if i != 7]
    offline = _offline(root)
    assert sorted(offline.get_column("driver_id").to_list()) == [500 + i for i in range(40) if i != 7]


def test_a_join_key_of_mixed_kinds_is_a_request_error_naming_it(make_repo: Any) -> None:
    store = FeatureStore(build(make_repo, "sqlite:///data/online.db"))
    rows = _rows(3)
    rows[2]["driver_id"] = {"id": 1}
    with pytest.raises(InvalidRequestError, match=r"column 'driver_id' mixes kinds of values: row 2"):
        store.push("stats", rows)
