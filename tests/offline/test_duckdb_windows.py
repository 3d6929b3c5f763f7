"""The DuckDB engine's two window plans: which one AUTO takes, forcing one by setting, equal results."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from featurestore.config import load_settings
from featurestore.errors import ConfigError
from featurestore.offline.base import engine_from_settings
from featurestore.offline.duckdb import DuckDBEngine
from featurestore.offline.duckdb_windows import WindowEstimate, WindowPlan, choose_window_plan
from featurestore.offline.pit import ViewRequest
from featurestore.registry.spec import ViewSpec

T0 = datetime(2026, 1, 1, tzinfo=UTC)
US = 1_000_000
DAY_US = 86_400 * US
FUNCTIONS = ["count", "sum", "mean", "min", "max", "stddev", "last", "count_distinct"]


def view_spec() -> ViewSpec:
    """Every function over one day and seven days of ``amount`` (count_distinct of ``merchant``)."""
    aggs = [
        {"name": f"{f}_{d}d", "column": "merchant" if f == "count_distinct" else "amount", "function": f}
        | {"window_us": d * DAY_US}
        for f in FUNCTIONS
        for d in (1, 7)
    ]
    dtypes = {"count": "Int64", "count_distinct": "Int64"}
    return ViewSpec(
        {
            "name": "txn",
            "version": "v1",
            "join_keys": {"card": "Int64"},
            "features": [{"name": a["name"], "dtype": dtypes.get(a["function"], "Float64")} for a in aggs],
            "ttl_seconds": None,
            "events": {
                "columns": [{"name": "amount", "dtype": "Float64"}, {"name": "merchant", "dtype": "String"}],
                "event_id": None,
                "granularity_us": None,
                "aggregations": aggs,
            },
        }
    )


def write_events(path: Path, cards: int, events: int, days: int, seed: int = 0) -> ViewRequest:
    rng = np.random.default_rng(seed)
    amount = rng.gamma(2.0, 30.0, events)
    pl.DataFrame(
        {
            "card": rng.integers(0, cards, events),
            "event_timestamp": int(T0.timestamp()) * US + rng.integers(0, days * DAY_US, events),
            "amount": np.where(rng.random(events) < 0.1, np.nan, amount),
            "merchant": rng.choice(["a", "b", "c", "d", None], events),
            "created_timestamp": [None] * events,
        }
    ).with_columns(
        pl.from_epoch("event_timestamp", time_unit="us").dt.replace_time_zone("UTC"),
        pl.col("amount").fill_nan(None),
        pl.col("created_timestamp").cast(pl.Datetime("us", "UTC")),
    ).write_parquet(path)
    spec = view_spec()
    assert spec.events is not None
    return ViewRequest(spec, tuple(a.name for a in spec.events.aggregations), (path,))


def entity_rows(cards: int, rows: int, days: int, seed: int = 1) -> pl.DataFrame:
    """The frame ``window_join`` takes (``__fs_row``, ``__fs_t``, ``__fs_k0``, ``__fs_s<w>``)."""
    rng = np.random.default_rng(seed)
    t = int(T0.timestamp()) * US + rng.integers(0, days * DAY_US, rows)
    frame = pl.DataFrame(
        {"__fs_row": np.arange(rows, dtype=np.uint32), "__fs_t": t, "__fs_k0": rng.integers(0, cards, rows)}
    )
    return frame.with_columns([(pl.col("__fs_t") - w).alias(f"__fs_s{w}") for w in (DAY_US, 7 * DAY_US)])


def test_auto_takes_frames_for_dense_keys_and_the_range_join_for_sparse_ones(tmp_path: Path) -> None:
    dense = write_events(tmp_path / "dense.parquet", cards=3, events=20_000, days=30)
    sparse = write_events(tmp_path / "sparse.parquet", cards=5_000, events=20_000, days=30)
    spec = dense.spec.events
    assert spec is not None
    aggs = list(spec.aggregations)
    with DuckDBEngine(tmp_path) as engine:
        plan, estimate = engine.window_plan_for(entity_rows(3, 5_000, 30), dense, aggs)
        # 3 keys x ~1,670 rows x ~6,700 events (pairs: 33 M) x 7/30 of the span (less at the start)
        assert plan is WindowPlan.FRAMES and estimate is not None
        assert 5e6 < estimate.joined_rows < 1e7 and 3e7 < estimate.pairs < 3.5e7
        assert 19_000 < estimate.events <= 20_000 and estimate.keys == 3 and estimate.entity_rows == 5_000
        assert estimate.buckets  # ~6,700 events per key over four 7-day windows
        plan, estimate = engine.window_plan_for(entity_rows(5_000, 5_000, 30), sparse, aggs)
        assert plan is WindowPlan.RANGE_JOIN and estimate is not None  # ~4 events per key in 7 days
        assert estimate.range_join_cost < estimate.frames_cost and not estimate.buckets
        engine.window_plan = WindowPlan.RANGE_JOIN  # forced: nothing estimated
        assert engine.window_plan_for(entity_rows(3, 10, 30), dense, aggs) == (WindowPlan.RANGE_JOIN, None)


def test_both_plans_give_the_same_windows_on_dense_keys(tmp_path: Path) -> None:
    """Mid-size data with nulls: frames (time buckets: dense keys) equal the range join, counts and extremes exactly."""
    req = write_events(tmp_path / "dense.parquet", cards=4, events=30_000, days=60)
    entity = entity_rows(5, 3_000, 62)  # card 4 has no events; rows after the last event
    spec = req.spec.events
    assert spec is not None
    aggs = list(spec.aggregations)
    with DuckDBEngine(tmp_path, window_plan="frames") as engine:
        plan, estimate = engine.window_plan_for(entity, req, aggs)
        assert plan is WindowPlan.FRAMES and estimate is not None and estimate.buckets
        frames = engine.window_join(entity, req, aggs)
        engine.window_plan = WindowPlan.RANGE_JOIN
        joined = engine.window_join(entity, req, aggs)
    assert frames.columns == joined.columns == [a.name for a in aggs]
    assert frames.height == joined.height == 3_000
    for name in frames.columns:
        a, b = frames.get_column(name), joined.get_column(name)
        assert a.is_null().to_list() == b.is_null().to_list(), name
        if name.startswith(("sum", "mean", "stddev")):
            close = ((a - b).abs() <= 1e-9 * b.abs().clip(lower_bound=1.0)).fill_null(True)
            assert close.all(), name
        else:
            assert a.to_list() == b.to_list(), name
    assert frames.get_column("count_7d").sum() > 100 * 3_000  # dense: hundreds of events per row


def test_the_window_plan_is_a_setting(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, env={"FEATURESTORE_DUCKDB_WINDOW_PLAN": "Frames"})
    with engine_from_settings(settings) as engine:
        assert isinstance(engine, DuckDBEngine) and engine.window_plan is WindowPlan.FRAMES
    with engine_from_settings(load_settings(tmp_path, env={})) as engine:
        assert isinstance(engine, DuckDBEngine) and engine.window_plan is WindowPlan.AUTO
    wrong = load_settings(tmp_path, env={"FEATURESTORE_DUCKDB_WINDOW_PLAN": "fast"})
    with pytest.raises(
        ConfigError, match=r"'duckdb_window_plan': unknown window plan 'fast'; use one of auto, range_join"
    ):
        engine_from_settings(wrong)


def test_choose_window_plan_weighs_the_range_join_against_frames() -> None:
    sparse = WindowEstimate(2e6, 9e6, 1e6, 2.3e5, 10_000, 100_000, aggregations=12)  # W2 scaled
    dense = WindowEstimate(1.2e8, 1.3e10, 3.3e5, 6.4e3, 16, 330_000, aggregations=4)  # the example's carriers
    assert choose_window_plan(WindowPlan.AUTO, sparse) is WindowPlan.RANGE_JOIN
    assert choose_window_plan(WindowPlan.AUTO, dense) is WindowPlan.FRAMES
    assert choose_window_plan(WindowPlan.AUTO, WindowEstimate(0, 0, 0, 0, 0, 5)) is WindowPlan.RANGE_JOIN  # no events
    assert choose_window_plan(WindowPlan.FRAMES, sparse) is WindowPlan.FRAMES
    assert not sparse.buckets and dense.buckets
