"""Point-in-time join semantics: hand-made cases and a property test against brute force."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurestore.errors import TrainingSetError
from featurestore.offline.duckdb import DuckDBEngine
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
    df = pl.DataFrame(rows).with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC")))
    df.write_parquet(path)
    return path


def join(entity: pl.DataFrame, *reqs: ViewRequest, **kw: Any) -> pl.DataFrame:
    with DuckDBEngine(memory_limit="1GB") as engine:
        return engine.point_in_time_join(entity, list(reqs), **kw)


@pytest.fixture
def driver_view(tmp_path: Path) -> ViewRequest:
    path = view_file(
        tmp_path,
        "drivers",
        {
            "driver_id": [1, 1, 1, 2],
            "event_timestamp": [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=5), T0],
            "rating": [1.0, 2.0, 3.0, 9.0],
        },
    )
    return ViewRequest(
        spec("drivers", {"driver_id": "Int64"}, {"rating": "Float64"}, timedelta(hours=2)), ("rating",), (path,)
    )


def test_latest_row_at_or_before_entity_time(driver_view: ViewRequest) -> None:
    entity = pl.DataFrame(
        {
            "driver_id": [1, 1, 1, 1],
            "event_timestamp": [T0 + timedelta(minutes=30), T0 + timedelta(hours=1), T0 + timedelta(hours=6), T0],
        }
    )
    out = join(entity, driver_view)
    # exactly at a row's event time the row is visible (<= is inclusive)
    assert out["rating"].to_list() == [1.0, 2.0, 3.0, 1.0]


def test_ttl_bounds_are_inclusive(driver_view: ViewRequest) -> None:
    ttl = timedelta(hours=2)
    entity = pl.DataFrame(
        {
            "driver_id": [1, 1],
            "event_timestamp": [
                T0 + timedelta(hours=1) + ttl,
                T0 + timedelta(hours=1) + ttl + timedelta(microseconds=1),
            ],
        }
    )
    out = join(entity, driver_view)
    assert out["rating"].to_list() == [2.0, None]


def test_entity_rows_before_any_feature_row_and_unknown_keys_get_nulls(driver_view: ViewRequest) -> None:
    entity = pl.DataFrame({"driver_id": [1, 3, None], "event_timestamp": [T0 - timedelta(seconds=1), T0, T0]})
    out = join(entity, driver_view)
    assert out["rating"].to_list() == [None, None, None]
    assert out.height == 3


def test_repeated_entity_rows_keep_order_and_count(driver_view: ViewRequest) -> None:
    times = [T0 + timedelta(hours=5), T0, T0 + timedelta(hours=5), T0, T0 + timedelta(hours=1)]
    entity = pl.DataFrame({"driver_id": [1, 2, 1, 2, 1], "event_timestamp": times, "label": [10, 20, 30, 40, 50]})
    out = join(entity, driver_view)
    assert out["label"].to_list() == [10, 20, 30, 40, 50]
    assert out["rating"].to_list() == [3.0, 9.0, 3.0, 9.0, 2.0]
    assert out.columns == ["driver_id", "event_timestamp", "label", "rating"]


def test_naive_timestamps_are_utc_and_aware_ones_are_converted(driver_view: ViewRequest) -> None:
    naive = pl.DataFrame({"driver_id": [1], "event_timestamp": [datetime(2026, 1, 1, 1, 0)]})
    assert join(naive, driver_view)["rating"].to_list() == [2.0]
    # 02:30 in UTC+02:00 is 00:30 UTC, before the 01:00 row
    aware = pl.DataFrame({"driver_id": [1], "event_timestamp": [datetime(2026, 1, 1, 2, 30)]}).with_columns(
        pl.col("event_timestamp").dt.replace_time_zone("Etc/GMT-2")
    )
    assert join(aware, driver_view)["rating"].to_list() == [1.0]
    # the user's column comes back unchanged
    assert join(aware, driver_view)["event_timestamp"].dtype == aware["event_timestamp"].dtype


def test_composite_keys_and_several_views(tmp_path: Path, driver_view: ViewRequest) -> None:
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
    route_req = ViewRequest(
        spec("routes", {"origin": "String", "dest": "String"}, {"delay": "Int64"}, None), ("delay",), (route,)
    )
    entity = pl.DataFrame(
        {
            "driver_id": [1, 2, 1],
            "origin": ["JFK", "LGA", "LGA"],
            "dest": ["SFO", "LAX", "SFO"],
            "event_timestamp": [T0 + timedelta(hours=1), T0 + timedelta(days=400), T0],
        }
    )
    out = join(entity, driver_view, route_req)
    assert out["delay"].to_list() == [7, 11, None]  # no ttl: a year later still joins
    assert out["rating"].to_list() == [2.0, None, 1.0]


def test_full_feature_names_and_clashes(tmp_path: Path, driver_view: ViewRequest) -> None:
    other = ViewRequest(
        spec("other", {"driver_id": "Int64"}, {"rating": "Float64"}, None), ("rating",), driver_view.files
    )
    entity = pl.DataFrame({"driver_id": [1], "event_timestamp": [T0]})
    with pytest.raises(TrainingSetError, match="full_feature_names"):
        join(entity, driver_view, other)
    out = join(entity, driver_view, other, full_feature_names=True)
    assert out.columns[-2:] == ["drivers__rating", "other__rating"]
    with pytest.raises(TrainingSetError, match="already a column"):
        join(entity.with_columns(rating=pl.lit(1)), driver_view)


def test_missing_key_or_timestamp_is_a_clear_error(driver_view: ViewRequest) -> None:
    with pytest.raises(TrainingSetError, match="driver_id"):
        join(pl.DataFrame({"event_timestamp": [T0]}), driver_view)
    with pytest.raises(TrainingSetError, match="event_timestamp"):
        join(pl.DataFrame({"driver_id": [1]}), driver_view)
    with pytest.raises(TrainingSetError, match="cannot be joined"):
        join(pl.DataFrame({"driver_id": ["one"], "event_timestamp": [T0]}), driver_view)


def test_custom_timestamp_column(driver_view: ViewRequest) -> None:
    entity = pl.DataFrame({"driver_id": [1], "ts": [T0 + timedelta(hours=1)]})
    assert join(entity, driver_view, timestamp_column="ts")["rating"].to_list() == [2.0]


# -- property: the DuckDB join equals a brute-force reference -----------------


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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 50)), min_size=1, max_size=40, unique=True),
    entity=st.lists(st.tuples(st.integers(0, 5), st.integers(-5, 60)), min_size=1, max_size=40),
    ttl=st.one_of(st.none(), st.integers(1, 20)),
)
def test_matches_brute_force(
    tmp_path: Path, rows: list[tuple[int, int]], entity: list[tuple[int, int]], ttl: int | None
) -> None:
    # one row per (key, time), as the offline store guarantees after ingest
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
    assert join(frame, req)["v"].to_list() == brute_force(entity, valued, ttl)


def test_ties_on_event_time_resolved_by_created_then_read_order(make_repo: Any) -> None:
    """Through ingest: same (key, event time) -> greatest created wins, then the last row read."""
    from featurestore import FeatureStore

    repo = make_repo(
        {
            "views.py": """
            from featurestore import Entity, Feature, FeatureView, Int64, ParquetSource
            d = Entity("d", join_keys=["driver_id"])
            v = FeatureView("v", [d], ParquetSource("src.parquet", timestamp="ts", created="created"),
                            [Feature("x", Int64)])
            """
        }
    )
    c0, c1 = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
    pl.DataFrame(
        {
            "driver_id": [1, 1, 1, 2, 2],
            "ts": [T0, T0, T0, T0, T0],
            "created": [c1, c0, c1, c0, c0],
            "x": [10, 20, 30, 40, 50],
        }
    ).write_parquet(repo / "src.parquet")
    store = FeatureStore(repo)
    store.apply()
    store.ingest()
    out = store.get_training_set(pl.DataFrame({"driver_id": [1, 2], "event_timestamp": [T0, T0]}), ["v:x"])
    assert out["x"].to_list() == [30, 50]


def test_spills_to_disk_when_the_join_exceeds_the_memory_limit(tmp_path: Path) -> None:
    """W1 at a fifth of its size (~70 MB of join input and output) under a 60 MB DuckDB limit."""
    from benchmarks.w1 import FEATURES, entity_frame, make_w1
    from featurestore import FeatureStore
    from featurestore.config import load_settings

    root = make_w1(tmp_path / "w1", 0.2)
    entity = entity_frame(0.2)
    refs = [f"driver_stats:{f}" for f in FEATURES]
    roomy = FeatureStore(root).get_training_set(entity, refs)
    tight = load_settings(root, env={"FEATURESTORE_DUCKDB_MEMORY_LIMIT": "60MB"})
    assert FeatureStore(settings=tight).get_training_set(entity, refs).equals(roomy)
    tiny = load_settings(root, env={"FEATURESTORE_DUCKDB_MEMORY_LIMIT": "4MB"})
    with pytest.raises(TrainingSetError, match="duckdb_memory_limit"):
        FeatureStore(settings=tiny).get_training_set(entity, refs)


def test_entity_times_as_text_in_mixed_iso_forms(driver_view: ViewRequest) -> None:
    """Z, offsets, naive (UTC), a space separator, no seconds and date only, row by row."""
    entity = pl.DataFrame(
        {
            "driver_id": [1, 1, 1, 1, 1, 1],
            "event_timestamp": [
                "2026-01-01T01:00:00Z",
                "2026-01-01 00:30:00",
                "2026-01-01",
                "2026-01-01T03:00:00+02:00",
                "2026-01-01T05:30",
                None,
            ],
        }
    )
    out = join(entity, driver_view)
    assert out["rating"].to_list() == [2.0, 1.0, 1.0, 2.0, 3.0, None]
    assert out["event_timestamp"].dtype == pl.String  # the user's column comes back as given
    with pytest.raises(TrainingSetError, match="cannot be joined"):
        join(pl.DataFrame({"driver_id": [1], "event_timestamp": ["tomorrow"]}), driver_view)
