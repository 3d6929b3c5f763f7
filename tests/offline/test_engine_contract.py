"""The offline engine contract, run on every engine and storage (``engine``/``offline_files`` in conftest).

Point-in-time joins (hand-made cases and a property test against brute force), window
aggregates in training sets, latest rows per entity for materialization, the event state of
aggregation views, and reading sources through their transforms.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurestore import CsvSource, Entity, Feature, FeatureView, Float64, ParquetSource, SqlSource
from featurestore.errors import DefinitionError, TrainingSetError
from featurestore.offline.base import SEQ, OfflineEngine, OfflineFile, TransformOutputError
from featurestore.offline.pit import ViewRequest
from featurestore.registry.spec import ViewSpec
from tests.aggregation.brute import AGGREGATIONS, MINUTE, brute, same
from tests.offline.conftest import PROPERTY_EXAMPLES

if TYPE_CHECKING:
    from tests.offline.conftest import LocalFiles

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def spec(name: str, keys: dict[str, str], feats: dict[str, str], ttl: timedelta | None, **extra: Any) -> ViewSpec:
    return ViewSpec(
        {
            "name": name,
            "version": "v1",
            "join_keys": keys,
            "features": [{"name": f, "dtype": t} for f, t in feats.items()],
            "ttl_seconds": None if ttl is None else ttl.total_seconds(),
            **extra,
        }
    )


def view_file(files: LocalFiles, name: str, rows: dict[str, list[Any]]) -> OfflineFile:
    df = pl.DataFrame(rows).with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC")))
    return files.write(name, df)


def join(engine: OfflineEngine, entity: pl.DataFrame, *reqs: ViewRequest, **kw: Any) -> pl.DataFrame:
    return engine.point_in_time_join(entity, list(reqs), **kw)


# -- point-in-time join: hand-made cases ------------------------------------------


@pytest.fixture
def driver_view(offline_files: LocalFiles) -> ViewRequest:
    path = view_file(
        offline_files,
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


def test_latest_row_at_or_before_entity_time(engine: OfflineEngine, driver_view: ViewRequest) -> None:
    entity = pl.DataFrame(
        {
            "driver_id": [1, 1, 1, 1],
            "event_timestamp": [T0 + timedelta(minutes=30), T0 + timedelta(hours=1), T0 + timedelta(hours=6), T0],
        }
    )
    out = join(engine, entity, driver_view)
    # exactly at a row's event time the row is visible (<= is inclusive)
    assert out["rating"].to_list() == [1.0, 2.0, 3.0, 1.0]


def test_ttl_bounds_are_inclusive(engine: OfflineEngine, driver_view: ViewRequest) -> None:
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
    out = join(engine, entity, driver_view)
    assert out["rating"].to_list() == [2.0, None]


def test_entity_rows_before_any_feature_row_and_unknown_keys_get_nulls(
    engine: OfflineEngine, driver_view: ViewRequest
) -> None:
    entity = pl.DataFrame({"driver_id": [1, 3, None], "event_timestamp": [T0 - timedelta(seconds=1), T0, T0]})
    out = join(engine, entity, driver_view)
    assert out["rating"].to_list() == [None, None, None]
    assert out.height == 3


def test_repeated_entity_rows_keep_order_and_count(engine: OfflineEngine, driver_view: ViewRequest) -> None:
    times = [T0 + timedelta(hours=5), T0, T0 + timedelta(hours=5), T0, T0 + timedelta(hours=1)]
    entity = pl.DataFrame({"driver_id": [1, 2, 1, 2, 1], "event_timestamp": times, "label": [10, 20, 30, 40, 50]})
    out = join(engine, entity, driver_view)
    assert out["label"].to_list() == [10, 20, 30, 40, 50]
    assert out["rating"].to_list() == [3.0, 9.0, 3.0, 9.0, 2.0]
    assert out.columns == ["driver_id", "event_timestamp", "label", "rating"]


def test_naive_timestamps_are_utc_and_aware_ones_are_converted(engine: OfflineEngine, driver_view: ViewRequest) -> None:
    naive = pl.DataFrame({"driver_id": [1], "event_timestamp": [datetime(2026, 1, 1, 1, 0)]})
    assert join(engine, naive, driver_view)["rating"].to_list() == [2.0]
    # 02:30 in UTC+02:00 is 00:30 UTC, before the 01:00 row
    aware = pl.DataFrame({"driver_id": [1], "event_timestamp": [datetime(2026, 1, 1, 2, 30)]}).with_columns(
        pl.col("event_timestamp").dt.replace_time_zone("Etc/GMT-2")
    )
    assert join(engine, aware, driver_view)["rating"].to_list() == [1.0]
    # the user's column comes back unchanged
    assert join(engine, aware, driver_view)["event_timestamp"].dtype == aware["event_timestamp"].dtype


def test_composite_keys_and_several_views(
    engine: OfflineEngine, offline_files: LocalFiles, driver_view: ViewRequest
) -> None:
    route = view_file(
        offline_files,
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
    out = join(engine, entity, driver_view, route_req)
    assert out["delay"].to_list() == [7, 11, None]  # no ttl: a year later still joins
    assert out["rating"].to_list() == [2.0, None, 1.0]


def test_full_feature_names_and_clashes(
    engine: OfflineEngine, offline_files: LocalFiles, driver_view: ViewRequest
) -> None:
    other = ViewRequest(
        spec("other", {"driver_id": "Int64"}, {"rating": "Float64"}, None), ("rating",), driver_view.files
    )
    entity = pl.DataFrame({"driver_id": [1], "event_timestamp": [T0]})
    with pytest.raises(TrainingSetError, match="full_feature_names"):
        join(engine, entity, driver_view, other)
    out = join(engine, entity, driver_view, other, full_feature_names=True)
    assert out.columns[-2:] == ["drivers__rating", "other__rating"]
    with pytest.raises(TrainingSetError, match="already a column"):
        join(engine, entity.with_columns(rating=pl.lit(1)), driver_view)


def test_missing_key_or_timestamp_is_a_clear_error(engine: OfflineEngine, driver_view: ViewRequest) -> None:
    with pytest.raises(TrainingSetError, match="driver_id"):
        join(engine, pl.DataFrame({"event_timestamp": [T0]}), driver_view)
    with pytest.raises(TrainingSetError, match="event_timestamp"):
        join(engine, pl.DataFrame({"driver_id": [1]}), driver_view)
    with pytest.raises(TrainingSetError, match="cannot be joined"):
        join(engine, pl.DataFrame({"driver_id": ["one"], "event_timestamp": [T0]}), driver_view)


def test_integer_keys_take_whole_floats_and_refuse_fractions_and_bools(
    engine: OfflineEngine, driver_view: ViewRequest
) -> None:
    """A whole float (pandas' integer column with nulls) is that integer; a fraction or a bool is
    refused, never truncated onto another entity (1.5 and True were read as driver 1)."""
    at = T0 + timedelta(hours=1)
    entity = pl.DataFrame({"driver_id": [1.0, None, 2.0, float("nan")], "event_timestamp": [at] * 4})
    out = join(engine, entity, driver_view)
    assert out["rating"].to_list() == [2.0, None, 9.0, None]
    assert out["driver_id"].dtype == pl.Float64  # the user's column comes back as given
    for keys, shown in (([1.0, 1.5, 2.5], "1.5"), ([True, False], "True")):
        refused = rf"column 'driver_id': {shown} .*2 of \d rows.* Int64 key of feature view 'drivers'"
        with pytest.raises(TrainingSetError, match=refused):
            join(engine, pl.DataFrame({"driver_id": keys, "event_timestamp": [at] * len(keys)}), driver_view)


def test_custom_timestamp_column(engine: OfflineEngine, driver_view: ViewRequest) -> None:
    entity = pl.DataFrame({"driver_id": [1], "ts": [T0 + timedelta(hours=1)]})
    assert join(engine, entity, driver_view, timestamp_column="ts")["rating"].to_list() == [2.0]


# -- property: every engine's join equals a brute-force reference -----------


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


def test_matches_brute_force(engine: OfflineEngine, offline_files: LocalFiles) -> None:
    @settings(
        max_examples=PROPERTY_EXAMPLES[engine.name],
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        rows=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 50)), min_size=1, max_size=40, unique=True),
        entity=st.lists(st.tuples(st.integers(0, 5), st.integers(-5, 60)), min_size=1, max_size=40),
        ttl=st.one_of(st.none(), st.integers(1, 20)),
    )
    def check(rows: list[tuple[int, int]], entity: list[tuple[int, int]], ttl: int | None) -> None:
        # one row per (key, time), as the offline store guarantees after ingest
        valued = [(k, t, i * 7 + 1) for i, (k, t) in enumerate(rows)]
        path = view_file(
            offline_files,
            "prop",
            {
                "k": [r[0] for r in valued],
                "event_timestamp": [T0 + timedelta(seconds=r[1]) for r in valued],
                "v": [r[2] for r in valued],
            },
        )
        ttl_delta = None if ttl is None else timedelta(seconds=ttl)
        req = ViewRequest(spec("prop", {"k": "Int64"}, {"v": "Int64"}, ttl_delta), ("v",), (path,))
        frame = pl.DataFrame(
            {"k": [e[0] for e in entity], "event_timestamp": [T0 + timedelta(seconds=e[1]) for e in entity]}
        )
        assert join(engine, frame, req)["v"].to_list() == brute_force(entity, valued, ttl)

    check()


def test_entity_times_as_text_in_mixed_iso_forms(engine: OfflineEngine, driver_view: ViewRequest) -> None:
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
    out = join(engine, entity, driver_view)
    assert out["rating"].to_list() == [2.0, 1.0, 1.0, 2.0, 3.0, None]
    assert out["event_timestamp"].dtype == pl.String  # the user's column comes back as given
    with pytest.raises(TrainingSetError, match="cannot be joined"):
        join(engine, pl.DataFrame({"driver_id": [1], "event_timestamp": ["tomorrow"]}), driver_view)


# -- window aggregates in training sets ---------------------------------------------

HOUR_US = 3_600_000_000


def aggregation_spec(name: str = "txn", granularity_us: int | None = None) -> ViewSpec:
    aggs = [
        ("n_1h", "amount", "count", HOUR_US),
        ("sum_1h", "amount", "sum", HOUR_US),
        ("max_3h", "amount", "max", 3 * HOUR_US),
        ("last_3h", "amount", "last", 3 * HOUR_US),
    ]
    events = {
        "columns": [{"name": "amount", "dtype": "Float64"}],
        "event_id": None,
        "granularity_us": granularity_us,
        "aggregations": [{"name": n, "column": c, "function": f, "window_us": w} for n, c, f, w in aggs],
    }
    feats = {"n_1h": "Int64", "sum_1h": "Float64", "max_3h": "Float64", "last_3h": "Float64"}
    return spec(name, {"card": "Int64"}, feats, None, events=events)


def events_file(files: LocalFiles, rows: list[tuple[int, int, float, int | None]]) -> OfflineFile:
    """Events (card, minutes after T0, amount, created minutes or None) as an aggregation view stores them."""
    return files.write(
        "txn",
        pl.DataFrame(
            {
                "card": [r[0] for r in rows],
                "event_timestamp": [T0 + timedelta(minutes=r[1]) for r in rows],
                "amount": [r[2] for r in rows],
                "created_timestamp": [None if r[3] is None else T0 + timedelta(minutes=r[3]) for r in rows],
            },
            schema={
                "card": pl.Int64,
                "event_timestamp": pl.Datetime("us", "UTC"),
                "amount": pl.Float64,
                "created_timestamp": pl.Datetime("us", "UTC"),
            },
        ),
    )


def test_windows_hold_the_events_after_the_start_up_to_the_entity_time(
    window_engine: OfflineEngine, offline_files: LocalFiles
) -> None:
    path = events_file(offline_files, [(1, 0, 10.0, None), (1, 60, 20.0, None), (1, 150, 5.0, None), (2, 0, 7.0, None)])
    req = ViewRequest(aggregation_spec(), ("n_1h", "sum_1h", "max_3h", "last_3h"), (path,))
    entity = pl.DataFrame(
        {
            "card": [1, 1, 1, 2, 3, 1],
            "event_timestamp": [T0 + timedelta(minutes=m) for m in (60, 120, 150, 0, 0, -1)],
        }
    ).with_columns(pl.Series("label", ["a", "b", "c", "d", "e", "f"]))
    out = join(window_engine, entity, req)
    assert out.columns == ["card", "event_timestamp", "label", "n_1h", "sum_1h", "max_3h", "last_3h"]
    # at 60: (0, 60] holds 20 only (the 0-minute event is exactly one hour old: outside); 3h holds both
    assert out["n_1h"].to_list() == [1, 0, 1, 1, 0, 0]
    assert out["sum_1h"].to_list() == [20.0, 0.0, 5.0, 7.0, 0.0, 0.0]
    assert out["max_3h"].to_list() == [20.0, 20.0, 20.0, 7.0, None, None]
    assert out["last_3h"].to_list() == [20.0, 20.0, 5.0, 7.0, None, None]
    assert out["label"].to_list() == ["a", "b", "c", "d", "e", "f"]


def test_window_last_breaks_time_ties_by_created_then_file_order(
    window_engine: OfflineEngine, offline_files: LocalFiles
) -> None:
    path = events_file(offline_files, [(1, 10, 1.0, 5), (1, 10, 2.0, 3), (2, 10, 3.0, None), (2, 10, 4.0, None)])
    req = ViewRequest(aggregation_spec(), ("last_3h",), (path,))
    entity = pl.DataFrame({"card": [1, 2], "event_timestamp": [T0 + timedelta(minutes=20)] * 2})
    assert join(window_engine, entity, req)["last_3h"].to_list() == [1.0, 4.0]


def test_plain_and_aggregation_views_in_one_call_keep_the_requested_order(
    window_engine: OfflineEngine, offline_files: LocalFiles, driver_view: ViewRequest
) -> None:
    path = events_file(offline_files, [(1, 0, 10.0, None)])
    req = ViewRequest(aggregation_spec(), ("max_3h",), (path,))
    entity = pl.DataFrame({"card": [1], "driver_id": [1], "event_timestamp": [T0 + timedelta(minutes=30)]})
    out = join(window_engine, entity, req, driver_view, full_feature_names=True)
    assert out.columns == ["card", "driver_id", "event_timestamp", "txn__max_3h", "drivers__rating"]
    assert out.row(0)[3:] == (10.0, 1.0)


def test_an_aggregation_view_without_events_gives_empty_windows(window_engine: OfflineEngine) -> None:
    req = ViewRequest(aggregation_spec(), ("n_1h", "max_3h"), ())
    out = join(window_engine, pl.DataFrame({"card": [1], "event_timestamp": [T0]}), req)
    assert out.row(0)[2:] == (0, None)


def test_empty_windows_are_given_for_every_entity_row(window_engine: OfflineEngine) -> None:
    req = ViewRequest(aggregation_spec(), ("n_1h", "max_3h"), ())
    out = join(window_engine, pl.DataFrame({"card": [1, 2, 1], "event_timestamp": [T0, T0, None]}), req)
    assert out["n_1h"].to_list() == [0, 0, None] and out["max_3h"].to_list() == [None, None, None]


def test_a_granularity_starts_windows_at_the_floor_of_the_entity_time(
    window_engine: OfflineEngine, offline_files: LocalFiles
) -> None:
    """``floor_g(t) - w < event_ts <= t``: with g = 1h an entity row at 01:50 sees 1h back from 01:00."""
    path = events_file(offline_files, [(1, 0, 1.0, None), (1, 30, 2.0, None), (1, 70, 4.0, None), (1, 111, 8.0, None)])
    req = ViewRequest(aggregation_spec(granularity_us=HOUR_US), ("n_1h", "sum_1h", "last_3h"), (path,))
    entity = pl.DataFrame(
        {"card": [1, 1, 1, 1], "event_timestamp": [T0 + timedelta(minutes=m) for m in (110, 120, 60, 0)]}
    )
    out = join(window_engine, entity, req)
    # 01:50: (00:00, 01:50] holds 30 and 70; 02:00: (01:00, 02:00] holds 70 and 111; 01:00: (00:00, 01:00]; 00:00: 0
    assert out["n_1h"].to_list() == [2, 2, 1, 1]
    assert out["sum_1h"].to_list() == [6.0, 12.0, 2.0, 1.0]
    assert out["last_3h"].to_list() == [4.0, 8.0, 2.0, 1.0]


def test_window_keys_take_whole_floats_and_refuse_fractions(
    window_engine: OfflineEngine, offline_files: LocalFiles
) -> None:
    path = events_file(offline_files, [(1, 0, 10.0, None), (2, 0, 7.0, None)])
    req = ViewRequest(aggregation_spec(), ("sum_1h",), (path,))
    at = [T0 + timedelta(minutes=30)] * 2
    out = join(window_engine, pl.DataFrame({"card": [2.0, None], "event_timestamp": at}), req)
    assert out["sum_1h"].to_list() == [7.0, 0.0]  # a null key matches nothing: an empty window
    with pytest.raises(TrainingSetError, match=r"column 'card': 1.5 .* Int64 key of feature view 'txn'"):
        join(window_engine, pl.DataFrame({"card": [1.5, 2.0], "event_timestamp": at}), req)


def test_windows_of_composite_keys_with_missing_and_null_keys_and_times(
    window_engine: OfflineEngine, offline_files: LocalFiles
) -> None:
    path = offline_files.write(
        "routes",
        pl.DataFrame(
            {
                "origin": ["JFK", "JFK", "JFK", "LGA", None],
                "dest": ["SFO", "SFO", "LAX", "SFO", "SFO"],
                "event_timestamp": [T0 + timedelta(minutes=m) for m in (0, 30, 30, 30, 30)],
                "delay": [1.0, None, 4.0, 8.0, 16.0],
                "created_timestamp": [None] * 5,
            },
            schema_overrides={
                "event_timestamp": pl.Datetime("us", "UTC"),
                "created_timestamp": pl.Datetime("us", "UTC"),
            },
        ),
    )
    events = {
        "columns": [{"name": "delay", "dtype": "Float64"}],
        "event_id": None,
        "granularity_us": None,
        "aggregations": [
            {"name": "n_1h", "column": "delay", "function": "count", "window_us": HOUR_US},
            {"name": "mean_1h", "column": "delay", "function": "mean", "window_us": HOUR_US},
        ],
    }
    view = spec(
        "routes", {"origin": "String", "dest": "String"}, {"n_1h": "Int64", "mean_1h": "Float64"}, None, events=events
    )
    req = ViewRequest(view, ("n_1h", "mean_1h"), (path,))
    entity = pl.DataFrame(
        {
            "origin": ["JFK", "JFK", None, "EWR", "JFK", "JFK"],
            "dest": ["SFO", "SFO", "SFO", "SFO", "LAX", "SFO"],
            "event_timestamp": [
                T0 + timedelta(minutes=45),
                T0 + timedelta(minutes=45),
                T0 + timedelta(minutes=45),
                T0,
                None,
                T0,
            ],
        },
        schema_overrides={"event_timestamp": pl.Datetime("us", "UTC")},
    )
    out = join(window_engine, entity, req)
    assert out["n_1h"].to_list() == [2, 2, 0, 0, None, 1]  # a null key matches nothing; no time: no window
    assert out["mean_1h"].to_list() == [1.0, 1.0, None, None, None, 1.0]


# (name, column, function, window in minutes) of the property below: every function, two windows.
_WINDOWS = [(n, c, f, m) for n, c, f, m in AGGREGATIONS]
_OUT_DTYPES = {"count": "Int64", "count_distinct": "Int64", "mean": "Float64", "stddev": "Float64"}


def _window_property_spec(granularity_us: int | None) -> ViewSpec:
    columns = {"amount": "Float64", "qty": "Int64", "merchant": "String"}
    events = {
        "columns": [{"name": c, "dtype": t} for c, t in columns.items()],
        "event_id": None,
        "granularity_us": granularity_us,
        "aggregations": [{"name": n, "column": c, "function": f, "window_us": m * MINUTE} for n, c, f, m in _WINDOWS],
    }
    feats = {n: _OUT_DTYPES.get(f, columns[c]) for n, c, f, _ in _WINDOWS}
    return spec("prop_windows", {"card_id": "Int64"}, feats, None, events=events)


def test_windows_match_brute_force_on_dense_keys(window_engine: OfflineEngine, offline_files: LocalFiles) -> None:
    """Few keys, many events per window (ties, nulls, created times), rows at event times, repeats, granularity."""

    examples = 40 if window_engine.name == "duckdb" else 6  # Spark: seconds per example

    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        events=st.lists(
            st.tuples(
                st.integers(1, 2),
                st.integers(0, 120),
                st.none() | st.integers(0, 3),
                st.none() | st.integers(-40, 40).map(lambda v: v / 4),
                st.none() | st.integers(-5, 5),
                st.none() | st.sampled_from("abc"),
            ),
            min_size=20,
            max_size=150,
        ),
        queries=st.lists(
            st.tuples(st.none() | st.integers(1, 3), st.none() | st.integers(-5, 130), st.sampled_from([-1, 0, 1])),
            min_size=10,
            max_size=30,
        ),
        granularity=st.sampled_from([None, 5 * MINUTE, 60 * MINUTE]),
        base=st.sampled_from([int(T0.timestamp()) * 1_000_000, -100 * MINUTE]),  # times before 1970 too
    )
    def check(
        events: list[tuple[Any, ...]], queries: list[tuple[Any, ...]], granularity: int | None, base: int
    ) -> None:
        rows = [
            {
                "card_id": k,
                "ts": base + m * MINUTE,
                "created": None if c is None else base + c * 1_000_000,
                "amount": a,
                "qty": q,
                "merchant": s,
            }
            for k, m, c, a, q, s in events
        ]
        stamp = partial(pl.from_epoch, time_unit="us")
        frame = pl.DataFrame(
            rows,
            schema={
                "card_id": pl.Int64,
                "ts": pl.Int64,
                "created": pl.Int64,
                "amount": pl.Float64,
                "qty": pl.Int64,
                "merchant": pl.String,
            },
        ).select(
            "card_id",
            stamp(pl.col("ts")).dt.replace_time_zone("UTC").alias("event_timestamp"),
            "amount",
            "qty",
            "merchant",
            stamp(pl.col("created")).dt.replace_time_zone("UTC").alias("created_timestamp"),
        )
        path = offline_files.write("prop_windows", frame)
        view = _window_property_spec(granularity)
        req = ViewRequest(view, tuple(n for n, *_ in _WINDOWS), (path,))
        times = [None if m is None else base + m * MINUTE + d for _, m, d in queries]
        entity = pl.DataFrame(
            {"card_id": [k for k, _, _ in queries], "event_timestamp": times},
            schema={"card_id": pl.Int64, "event_timestamp": pl.Int64},
        ).with_columns(stamp(pl.col("event_timestamp")).dt.replace_time_zone("UTC"))
        out = join(window_engine, entity, req)
        for row, (card, _, _), t in zip(out.iter_rows(named=True), queries, times, strict=True):
            want = {n: None for n, *_ in _WINDOWS} if t is None else brute(rows, card, t, granularity)
            for name, _, function, _ in _WINDOWS:
                assert same(function, row[name], want[name]), (name, card, t, row[name], want[name])

    check()


# -- latest rows per entity (materialization) -------------------------------------------


@pytest.fixture
def stored(offline_files: LocalFiles) -> list[OfflineFile]:
    """Two days of a view's rows, one file per day as the layout stores them."""
    day1 = view_file(
        offline_files,
        "day1",
        {
            "driver_id": [1, 1, 2],
            "event_timestamp": [T0, T0 + timedelta(hours=3), T0 + timedelta(hours=1)],
            "rating": [1.0, 2.0, 5.0],
        },
    )
    day2 = view_file(
        offline_files,
        "day2",
        {
            "driver_id": [1, 3],
            "event_timestamp": [T0 + timedelta(days=1), T0 + timedelta(days=1, hours=2)],
            "rating": [3.0, None],
        },
    )
    return [day1, day2]


DRIVERS = spec("drivers", {"driver_id": "Int64"}, {"rating": "Float64"}, None)


def _by_key(df: pl.DataFrame) -> dict[int, tuple[datetime, float | None]]:
    return {r["driver_id"]: (r["event_timestamp"], r["rating"]) for r in df.iter_rows(named=True)}


def test_latest_rows_take_the_newest_row_per_entity_up_to_end(engine: OfflineEngine, stored: list[OfflineFile]) -> None:
    df, scanned = engine.latest_rows(DRIVERS, stored, None, T0 + timedelta(days=2))
    # created_timestamp: what the online store orders rows of one time by (null: these files lack it)
    assert df.columns == ["driver_id", "event_timestamp", "rating", "created_timestamp"]
    assert df.schema["event_timestamp"] == df.schema["created_timestamp"] == pl.Datetime("us", "UTC")
    assert df["created_timestamp"].null_count() == df.height
    assert _by_key(df) == {
        1: (T0 + timedelta(days=1), 3.0),
        2: (T0 + timedelta(hours=1), 5.0),
        3: (T0 + timedelta(days=1, hours=2), None),
    }
    assert scanned == 5


def test_latest_rows_bounds_are_inclusive(engine: OfflineEngine, stored: list[OfflineFile]) -> None:
    df, scanned = engine.latest_rows(DRIVERS, stored, T0 + timedelta(hours=1), T0 + timedelta(hours=3))
    assert _by_key(df) == {1: (T0 + timedelta(hours=3), 2.0), 2: (T0 + timedelta(hours=1), 5.0)}
    assert scanned == 2
    df, scanned = engine.latest_rows(DRIVERS, stored, T0 + timedelta(days=3), T0 + timedelta(days=4))
    assert (df.height, scanned) == (0, 0)


def test_latest_rows_of_a_version_without_files_is_an_empty_typed_frame(engine: OfflineEngine) -> None:
    df, scanned = engine.latest_rows(DRIVERS, [], None, T0)
    assert scanned == 0
    utc = pl.Datetime("us", "UTC")
    assert df.schema == pl.Schema(
        {"driver_id": pl.Int64, "event_timestamp": utc, "rating": pl.Float64, "created_timestamp": utc}
    )


def test_latest_rows_with_composite_string_keys(engine: OfflineEngine, offline_files: LocalFiles) -> None:
    path = view_file(
        offline_files,
        "routes",
        {
            "origin": ["JFK", "JFK", "JFK", "LGA"],
            "dest": ["LAX", "LAX", "SFO", "LAX"],
            "event_timestamp": [T0, T0 + timedelta(hours=1), T0, T0],
            "delay": [1, 2, 3, 4],
        },
    )
    routes = spec("routes", {"origin": "String", "dest": "String"}, {"delay": "Int64"}, None)
    df, _ = engine.latest_rows(routes, [path], None, T0 + timedelta(days=1))
    got = {(r["origin"], r["dest"]): r["delay"] for r in df.iter_rows(named=True)}
    assert got == {("JFK", "LAX"): 2, ("JFK", "SFO"): 3, ("LGA", "LAX"): 4}


# -- the event state of aggregation views (materialization) ---------------------------------


def test_state_events_are_those_within_the_horizon_of_each_entitys_newest_event(
    engine: OfflineEngine, offline_files: LocalFiles
) -> None:
    # horizon 3h: card 1's newest event by 05:00 is 04:00, so (01:00, 04:00] stays; card 2's (00:00) is too old
    path = events_file(
        offline_files, [(1, 0, 1.0, None), (1, 90, 2.0, None), (1, 240, 3.0, 1), (1, 400, 9.0, None), (2, 0, 5.0, None)]
    )
    df, scanned = engine.state_events(aggregation_spec(), [path], T0 + timedelta(hours=5))
    assert scanned == 5
    assert sorted(df.get_column("amount").to_list()) == [2.0, 3.0]
    assert {"card", "event_timestamp", "created_timestamp", "amount", SEQ} <= set(df.columns)
    assert sorted(df.get_column(SEQ).to_list()) == [1, 2]  # positions in the file
    assert df.schema["event_timestamp"] == pl.Datetime("us", "UTC")


def test_state_events_without_files(engine: OfflineEngine) -> None:
    df, scanned = engine.state_events(aggregation_spec(), [], T0)
    assert (df.height, scanned) == (0, 0)


# -- reading sources through their transforms (ingest) ---------------------------------------

DRIVER = Entity("driver", join_keys=["driver_id"])


@pytest.fixture
def source_rows(engine: OfflineEngine) -> pl.DataFrame:
    repo: Path = engine.repo
    df = pl.DataFrame(
        {
            "driver_id": [1, 2, 3],
            "event_timestamp": [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)],
            "rating": [1.5, 2.5, 3.5],
        }
    )
    (repo / "data").mkdir(parents=True, exist_ok=True)
    df.write_parquet(repo / "data" / "drivers.parquet")
    df.write_csv(repo / "data" / "drivers.csv")
    return df


def _view(source: Any, transform: Any = None) -> FeatureView:
    # These polars transforms are row-wise, so key-local: distributed engines may run them per key group.
    return FeatureView(
        "drivers",
        [DRIVER],
        source,
        [Feature("rating", Float64)],
        transform=transform,
        transform_key_local=callable(transform),
    )


@pytest.mark.parametrize(
    "source",
    [
        ParquetSource("data/drivers.parquet"),
        CsvSource("data/drivers.csv"),
        pytest.param(
            SqlSource("SELECT * FROM 'data/drivers.parquet'"),
            marks=pytest.mark.notimpl(["spark"], raises=DefinitionError),  # a DuckDB query; Spark SQL differs
        ),
    ],
    ids=["parquet", "csv", "sql"],
)
def test_read_gives_every_kind_of_source_relative_to_the_repository(
    engine: OfflineEngine, source_rows: pl.DataFrame, source: Any
) -> None:
    df = engine.read(_view(source)).collect().sort("driver_id")
    assert df.get_column("rating").to_list() == [1.5, 2.5, 3.5]
    assert df.get_column("driver_id").to_list() == [1, 2, 3]
    assert engine.read(_view(source), limit=2).collect().height == 2


def test_read_applies_sql_and_polars_transforms(engine: OfflineEngine, source_rows: pl.DataFrame) -> None:
    sql = _view(
        ParquetSource("data/drivers.parquet"), "SELECT driver_id, event_timestamp, rating * 2 AS rating FROM source"
    )
    assert sorted(engine.read(sql).collect().get_column("rating").to_list()) == [3.0, 5.0, 7.0]
    assert engine.read(sql, limit=1).collect().height == 1
    assert engine.schema(sql)["rating"] == pl.Float64

    def double(lf: pl.LazyFrame) -> pl.DataFrame:  # a DataFrame is accepted too
        return lf.with_columns(pl.col("rating") * 2).collect()

    polars_view = _view(ParquetSource("data/drivers.parquet"), double)
    assert sorted(engine.read(polars_view).collect().get_column("rating").to_list()) == [3.0, 5.0, 7.0]
    assert engine.schema(polars_view)["driver_id"] == pl.Int64


def test_a_transform_returning_no_frame_is_refused(engine: OfflineEngine, source_rows: pl.DataFrame) -> None:
    with pytest.raises(TransformOutputError, match="got int"):
        engine.read(_view(ParquetSource("data/drivers.parquet"), lambda lf: 1)).collect()


def test_every_available_engine_runs_this_suite() -> None:
    import importlib.util

    from featurestore.offline.base import ENGINES
    from tests.offline.conftest import ENGINE_FACTORIES

    available = [n for n, t in ENGINES.items() if importlib.util.find_spec(t.partition(":")[0]) is not None]
    assert "duckdb" in available
    missing = sorted(set(available) - set(ENGINE_FACTORIES))
    assert not missing, f"add a factory for {missing} to ENGINE_FACTORIES in tests/offline/conftest.py"
