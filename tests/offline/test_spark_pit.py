"""The point-in-time join on Spark equals the DuckDB join: hand-made cases and a property test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurestore.errors import TrainingSetError
from featurestore.offline import pit
from featurestore.offline.frames import duckdb_connection
from featurestore.offline.pit import ViewRequest
from featurestore.registry.spec import ViewSpec

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def spec(name: str, keys: dict[str, str], feats: dict[str, str], ttl: timedelta | None) -> ViewSpec:
    return ViewSpec(
        {
            "name": name,
            "version": "v1",
            "join_keys": keys,
            "features": [{"name": f, "dtype": t} for f, t in feats.items()],
            "ttl_seconds": None if ttl is None else ttl.total_seconds(),
        }
    )


def view_file(tmp: Path, name: str, rows: dict[str, list[Any]]) -> Path:
    path = tmp / f"{name}.parquet"
    pl.DataFrame(rows).with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC"))).write_parquet(path)
    return path


def both(spark: Any, entity: pl.DataFrame, *reqs: ViewRequest, **kw: Any) -> pl.DataFrame:
    """Spark's join, checked equal (values, dtypes, order) to DuckDB's."""
    from featurestore.offline.spark import point_in_time_join

    expected = pit.point_in_time_join(duckdb_connection("1GB"), entity, list(reqs), **kw)
    got = point_in_time_join(spark, entity, list(reqs), **kw)
    assert got.schema == expected.schema
    assert got.to_dicts() == expected.to_dicts()
    return got


@pytest.fixture
def driver_view(tmp_path: Path) -> ViewRequest:
    path = view_file(
        tmp_path,
        "drivers",
        {
            "driver_id": [1, 1, 1, 2, 2],
            "event_timestamp": [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=5), T0, T0 + timedelta(hours=1)],
            "rating": [1.0, 2.0, 3.0, 9.0, None],
            "trips": [1, 2, 3, 4, 5],
            "tags": [["a"], [], None, ["b", "c"], ["d"]],
        },
    )
    return ViewRequest(
        spec("drivers", {"driver_id": "Int64"}, {"rating": "Float64", "trips": "Int64", "tags": "List(String)"},
             timedelta(hours=2)),
        ("rating", "trips", "tags"),
        (path,),
    )


def test_hand_cases_equal_duckdb(spark: Any, driver_view: ViewRequest) -> None:
    ttl = timedelta(hours=2)
    entity = pl.DataFrame(
        {
            "driver_id": [1, 1, 1, 1, 2, 3, None, 1, 1, 2],
            "event_timestamp": [
                T0 + timedelta(minutes=30),
                T0 + timedelta(hours=1),  # exactly at a row: visible
                T0 + timedelta(hours=6),
                T0 - timedelta(seconds=1),  # before every row
                T0 + timedelta(hours=2),  # the latest row has null features: nulls, not the older row
                T0,
                T0,
                T0 + timedelta(hours=1) + ttl,  # ttl bound inclusive
                T0 + timedelta(hours=1) + ttl + timedelta(microseconds=1),
                None,
            ],
            "label": list(range(10)),
        }
    )
    out = both(spark, entity, driver_view)
    assert out["rating"].to_list() == [1.0, 2.0, 3.0, None, None, None, None, 2.0, None, None]
    assert out["trips"].to_list() == [1, 2, 3, None, 5, None, None, 2, None, None]
    assert out.columns == ["driver_id", "event_timestamp", "label", "rating", "trips", "tags"]


def test_several_views_composite_keys_and_full_names(spark: Any, tmp_path: Path, driver_view: ViewRequest) -> None:
    route = view_file(
        tmp_path,
        "routes",
        {
            "origin": ["JFK", "JFK", "LGA"],
            "dest": ["LAX", "SFO", "LAX"],
            "event_timestamp": [T0, T0, T0],
            "delay": [5, 7, 11],
        },
    )
    routes = ViewRequest(
        spec("routes", {"origin": "String", "dest": "String"}, {"delay": "Int64"}, None), ("delay",), (route,)
    )
    entity = pl.DataFrame(
        {
            "driver_id": [1, 2, 1],
            "origin": ["JFK", "LGA", "LGA"],
            "dest": ["SFO", "LAX", "SFO"],
            "event_timestamp": ["2026-01-01T01:00:00Z", "2027-02-05", "2026-01-01 00:00"],
        }
    )
    out = both(spark, entity, driver_view, routes, full_feature_names=True)
    assert out["routes__delay"].to_list() == [7, 11, None]
    assert out["event_timestamp"].dtype == pl.String  # the user's column comes back as given


def test_same_errors_as_duckdb(spark: Any, driver_view: ViewRequest) -> None:
    from featurestore.offline.spark import point_in_time_join

    def join(entity: pl.DataFrame, *reqs: ViewRequest, **kw: Any) -> pl.DataFrame:
        return point_in_time_join(spark, entity, list(reqs), **kw)

    with pytest.raises(TrainingSetError, match="driver_id"):
        join(pl.DataFrame({"event_timestamp": [T0]}), driver_view)
    with pytest.raises(TrainingSetError, match="event_timestamp"):
        join(pl.DataFrame({"driver_id": [1]}), driver_view)
    with pytest.raises(TrainingSetError, match="cannot be joined"):
        join(pl.DataFrame({"driver_id": ["one"], "event_timestamp": [T0]}), driver_view)
    with pytest.raises(TrainingSetError, match="already a column"):
        join(pl.DataFrame({"driver_id": [1], "event_timestamp": [T0], "trips": [1]}), driver_view)
    empty = ViewRequest(driver_view.spec, driver_view.features, ())
    with pytest.raises(TrainingSetError, match="no offline data"):
        join(pl.DataFrame({"driver_id": [1], "event_timestamp": [T0]}), empty)


def test_aggregation_views_say_they_need_duckdb(spark: Any, driver_view: ViewRequest) -> None:
    from featurestore.offline.spark import point_in_time_join

    raw = {
        **driver_view.spec.raw,
        "name": "clicks",
        "events": {
            "columns": [{"name": "n", "dtype": "Int64"}],
            "aggregations": [{"name": "n_1h", "column": "n", "function": "sum", "window_us": 3_600_000_000}],
        },
    }
    req = ViewRequest(ViewSpec(raw), ("n_1h",), driver_view.files)
    with pytest.raises(TrainingSetError, match=r"'clicks' is an aggregation view.*engine = \"duckdb\""):
        point_in_time_join(spark, pl.DataFrame({"driver_id": [1], "event_timestamp": [T0]}), [req])


def test_out_is_written_by_spark(spark: Any, tmp_path: Path, driver_view: ViewRequest) -> None:
    from featurestore.offline.spark import point_in_time_join

    entity = pl.DataFrame({"driver_id": [2, 1, 1], "event_timestamp": [T0, T0 + timedelta(hours=5), T0]})
    out = tmp_path / "train"
    df = point_in_time_join(spark, entity, [driver_view], out=out)
    written = pl.read_parquet(out / "*.parquet").sort("__fs_row")
    assert written["__fs_row"].to_list() == [0, 1, 2]
    assert written["__fs_f0_0"].to_list() == df["rating"].to_list() == [9.0, 3.0, 1.0]


def test_remote_files_are_read_in_the_executors(spark: Any, tmp_path: Path, driver_view: ViewRequest) -> None:
    """A file:// URI takes the pyarrow.fs path that s3:// URIs take (no Hadoop connector)."""
    uri = ViewRequest(driver_view.spec, driver_view.features, (driver_view.files[0].resolve().as_uri(),))  # type: ignore[arg-type]
    entity = pl.DataFrame({"driver_id": [1, 2, 1], "event_timestamp": [T0, T0, T0 + timedelta(hours=1)]})
    assert both(spark, entity, uri).equals(both(spark, entity, driver_view))


def brute_force(entity: list[tuple[int, int]], rows: list[tuple[int, int, int]], ttl: int | None) -> list[int | None]:
    out: list[int | None] = []
    for key, ts in entity:
        best: tuple[int, int] | None = None
        for rkey, rts, val in rows:
            if rkey == key and rts <= ts and (ttl is None or rts >= ts - ttl):
                if best is None or rts > best[0]:
                    best = (rts, val)
        out.append(None if best is None else best[1])
    return out


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 50)), min_size=1, max_size=40, unique=True),
    entity=st.lists(st.tuples(st.integers(0, 5), st.integers(-5, 60)), min_size=1, max_size=40),
    ttl=st.one_of(st.none(), st.integers(1, 20)),
)
def test_matches_brute_force(
    spark: Any, tmp_path: Path, rows: list[tuple[int, int]], entity: list[tuple[int, int]], ttl: int | None
) -> None:
    from featurestore.offline.spark import point_in_time_join

    valued = [(k, t, i * 7 + 1) for i, (k, t) in enumerate(rows)]
    path = view_file(
        tmp_path,
        "prop",
        {
            "k": [r[0] for r in valued],
            "event_timestamp": [T0 + timedelta(seconds=r[1]) for r in valued],
            "v": [r[2] for r in valued],
        },
    )
    req = ViewRequest(
        spec("prop", {"k": "Int64"}, {"v": "Int64"}, None if ttl is None else timedelta(seconds=ttl)), ("v",), (path,)
    )
    frame = pl.DataFrame(
        {"k": [e[0] for e in entity], "event_timestamp": [T0 + timedelta(seconds=e[1]) for e in entity]}
    )
    assert point_in_time_join(spark, frame, [req])["v"].to_list() == brute_force(entity, valued, ttl)
