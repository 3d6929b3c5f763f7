"""Spark-only behaviour: values and dtypes equal DuckDB's, remote files read in the executors, clear limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from featurestore.dsl.view import FeatureView
from featurestore.errors import DefinitionError
from featurestore.offline.duckdb import DuckDBEngine
from featurestore.offline.pit import ViewRequest
from featurestore.offline.spark import SparkEngine
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
    expected = DuckDBEngine(memory_limit="1GB").point_in_time_join(entity, list(reqs), **kw)
    got = SparkEngine().point_in_time_join(entity, list(reqs), **kw)
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
        spec(
            "drivers",
            {"driver_id": "Int64"},
            {"rating": "Float64", "trips": "Int64", "tags": "List(String)"},
            timedelta(hours=2),
        ),
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


def test_aggregation_windows_equal_duckdb_with_and_without_out(
    spark: Any, tmp_path: Path, driver_view: ViewRequest
) -> None:
    events = pl.DataFrame(
        {
            "driver_id": [1, 1, 1, 2, 1],
            "event_timestamp": [
                T0,
                T0 + timedelta(minutes=30),
                T0 + timedelta(minutes=30),
                T0,
                T0 + timedelta(hours=2),
            ],
            "created_timestamp": [None, T0, None, None, None],
            "n": [1, 5, None, 7, 2],
        },
        schema={
            "driver_id": pl.Int64,
            "event_timestamp": pl.Datetime("us", "UTC"),
            "created_timestamp": pl.Datetime("us", "UTC"),
            "n": pl.Int64,
        },
    )
    path = tmp_path / "clicks.parquet"
    events.write_parquet(path)
    hour = 3_600_000_000
    aggs = {
        "n_sum_1h": ("sum", "Int64"),
        "n_count_1h": ("count", "Int64"),
        "n_last_1h": ("last", "Int64"),
        "n_distinct_1h": ("count_distinct", "Int64"),
        "n_sd_1h": ("stddev", "Float64"),
        "n_mean_1h": ("mean", "Float64"),
        "n_min_1h": ("min", "Int64"),
    }
    raw = {
        **spec("clicks", {"driver_id": "Int64"}, {k: t for k, (_, t) in aggs.items()}, None).raw,
        "events": {
            "columns": [{"name": "n", "dtype": "Int64"}],
            "event_id": None,
            "granularity_us": None,
            "aggregations": [
                {"name": k, "column": "n", "function": f, "window_us": hour} for k, (f, _) in aggs.items()
            ],
        },
    }
    clicks = ViewRequest(ViewSpec(raw), tuple(aggs), (path,))
    entity = pl.DataFrame(
        {
            "driver_id": [1, 2, 1, 1, 3],
            "event_timestamp": [T0 + timedelta(minutes=45), T0, T0 + timedelta(hours=3), T0, None],
        },
        schema={"driver_id": pl.Int64, "event_timestamp": pl.Datetime("us", "UTC")},
    )
    got = both(spark, entity, driver_view, clicks)
    assert got["n_sum_1h"].to_list() == [6, 7, 0, 1, None]
    assert got["n_last_1h"].to_list() == [5, 7, None, 1, None]  # the later row at 00:30 is null: 5 wins
    out = tmp_path / "train.parquet"
    written = SparkEngine().point_in_time_join_to(entity, [driver_view, clicks], out)
    assert written is not None and written.to_dicts() == got.to_dicts()
    assert pl.read_parquet(out).to_dicts() == got.to_dicts()


def test_remote_files_are_read_in_the_executors(spark: Any, tmp_path: Path, driver_view: ViewRequest) -> None:
    """A file:// URI takes the pyarrow.fs path that s3:// URIs take (no Hadoop connector)."""
    uri = ViewRequest(driver_view.spec, driver_view.features, (driver_view.files[0].resolve().as_uri(),))  # type: ignore[arg-type]
    entity = pl.DataFrame({"driver_id": [1, 2, 1], "event_timestamp": [T0, T0, T0 + timedelta(hours=1)]})
    assert both(spark, entity, uri).equals(both(spark, entity, driver_view))


SPARK_VIEWS = """
from featurestore import Entity, Feature, FeatureView, Float64, Int64, ParquetSource

driver = Entity("driver", join_keys=["driver_id"])
plain = FeatureView("plain", [driver], ParquetSource("data/src.parquet"), [Feature("rating", Float64)])
doubled = FeatureView(
    "doubled", [driver], ParquetSource("data/src.parquet"), [Feature("rating2", Float64), Feature("n", Int64)],
    transform="SELECT driver_id, event_timestamp, rating * 2 AS rating2, count(*) OVER (PARTITION BY driver_id) AS n "
    "FROM source",
)
"""


def test_ingest_reads_sources_and_sql_transforms_with_spark(spark: Any, make_repo: Any) -> None:
    """Through the store: Spark reads the source and runs the SQL transform; the gate and commit are today's."""
    from featurestore import FeatureStore

    repo = make_repo({"views.py": SPARK_VIEWS}, config='project = "s"\nengine = "spark"\n')
    (repo / "data").mkdir()
    src = pl.DataFrame(
        {
            "driver_id": [1, 1, 2],
            "event_timestamp": [T0, T0 + timedelta(days=1), T0],
            "rating": [1.0, 2.0, 3.0],
        }
    ).with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC")))
    src.write_parquet(repo / "data" / "src.parquet")
    store = FeatureStore(repo)
    assert store.engine.name == "spark"
    store.apply()
    results = {r.view: r for r in store.ingest()}
    assert results["plain"].rows_written == results["doubled"].rows_written == 3
    state = store.state()
    stored = pl.read_parquet(store.layout.files("doubled", state.view("doubled").version)).sort(
        "driver_id", "event_timestamp"
    )
    assert stored["rating2"].to_list() == [2.0, 4.0, 6.0] and stored["n"].to_list() == [2, 2, 1]
    assert len(store.layout.dates("plain", state.view("plain").version)) == 2  # one partition per day, committed
    entity = pl.DataFrame({"driver_id": [1, 2], "event_timestamp": [T0 + timedelta(days=2), T0]})
    out = store.get_training_set(entity, ["plain:rating", "doubled:rating2"])
    assert out["rating"].to_list() == [2.0, 3.0] and out["rating2"].to_list() == [4.0, 6.0]


def test_out_is_written_by_spark_as_part_files_in_input_order(
    spark: Any, tmp_path: Path, driver_view: ViewRequest
) -> None:
    """The folder Spark writes reads back as DuckDB's frame: values, dtypes, columns and row order."""
    n = 40
    entity = pl.DataFrame(
        {
            "driver_id": [(i * 7) % 3 for i in range(n)],
            "event_timestamp": [T0 + timedelta(minutes=17 * i) for i in range(n)],
            "label": [f"r{i}" for i in range(n)],
            "naive": [datetime(2026, 1, 1) + timedelta(days=i) for i in range(n)],
        }
    )
    # Several part files, whose order must be the input's (AQE would coalesce these few rows into one).
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    out = tmp_path / "train.parquet"
    out.write_bytes(b"an older set")  # replaced whole
    try:
        assert SparkEngine().point_in_time_join_to(entity, [driver_view], out) is None
    finally:
        spark.conf.set("spark.sql.adaptive.enabled", "true")  # as the shared session has it
    parts = sorted(p.name for p in out.glob("*.parquet"))
    assert out.is_dir() and len(parts) > 1 and parts[0].startswith("part-00000")
    expected = DuckDBEngine(memory_limit="1GB").point_in_time_join(entity, [driver_view])
    got = pl.read_parquet(out)
    assert got.schema == expected.schema
    assert got.to_dicts() == expected.to_dicts()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drivers.parquet", "train.parquet"]  # nothing staged left


def test_out_on_spark_through_the_store_has_a_manifest_and_rebuilds(spark: Any, make_repo: Any) -> None:
    import orjson

    from featurestore import FeatureStore

    repo = make_repo({"views.py": SPARK_VIEWS}, config='project = "s"\nengine = "spark"\n')
    (repo / "data").mkdir()
    pl.DataFrame(
        {"driver_id": [1, 1, 2], "event_timestamp": [T0, T0 + timedelta(days=1), T0], "rating": [1.0, 2.0, 3.0]}
    ).with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC"))).write_parquet(
        repo / "data" / "src.parquet"
    )
    store = FeatureStore(repo)
    store.apply()
    store.ingest()
    entity = pl.DataFrame({"driver_id": [2, 1, 1], "event_timestamp": [T0, T0 + timedelta(days=2), T0]})
    out = repo / "sets" / "train.parquet"
    assert store.get_training_set(entity, ["plain:rating", "doubled:rating2"], out=out, output="none") is None
    written = pl.read_parquet(out)
    assert written["rating"].to_list() == [3.0, 2.0, 1.0] and written["rating2"].to_list() == [6.0, 4.0, 2.0]
    manifest = orjson.loads((repo / "sets" / "train.parquet.manifest.json").read_bytes())
    output = manifest["output"]
    assert output["rows"] == 3 and [Path(f["path"]).parent for f in output["files"]] == [out.resolve()] * len(
        output["files"]
    )
    assert store.rebuild_training_set(repo / "sets" / "train.parquet.manifest.json").equals(written)
    # Asked for a frame, the store reads the written set back.
    again = store.get_training_set(entity, ["plain:rating", "doubled:rating2"], out=out)
    assert again.equals(written)


def _trips(repo: Path) -> None:
    (repo / "data").mkdir(exist_ok=True)
    pl.DataFrame(
        {
            "driver_id": [1, 2, 1, 3, 2, 1, 3],
            "event_timestamp": [T0 + timedelta(hours=h) for h in (2, 0, 0, 1, 1, 1, 0)],
            "fare": [3.0, 10.0, 1.0, 7.0, 20.0, 2.0, 5.0],
        }
    ).with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC"))).write_parquet(
        repo / "data" / "trips.parquet"
    )


def _fares_view(key_local: bool) -> FeatureView:
    from featurestore import Entity, Feature, Float64, Int64, ParquetSource

    def fares(lf: pl.LazyFrame) -> pl.LazyFrame:  # per driver: running total and the trip's rank
        lf = lf.sort("driver_id", "event_timestamp")
        return lf.select(
            "driver_id",
            "event_timestamp",
            pl.col("fare").cum_sum().over("driver_id").alias("total"),
            pl.int_range(1, pl.len() + 1).over("driver_id").alias("n"),
        )

    return FeatureView(
        "fares",
        [Entity("driver", join_keys=["driver_id"])],
        ParquetSource("data/trips.parquet"),
        [Feature("total", Float64), Feature("n", Int64)],
        transform=fares,
        transform_key_local=key_local,
    )


def test_a_key_local_polars_transform_runs_per_key_group_like_duckdb(spark: Any, tmp_path: Path) -> None:
    _trips(tmp_path)
    view = _fares_view(key_local=True)
    key = ["driver_id", "event_timestamp"]
    expected = DuckDBEngine(tmp_path, memory_limit="1GB").read(view).collect().sort(key)
    engine = SparkEngine(tmp_path)
    got = engine.read(view).collect().sort(key)
    assert got.to_dicts() == expected.to_dicts()
    assert got["total"].to_list() == [1.0, 3.0, 6.0, 10.0, 30.0, 5.0, 12.0]
    assert engine.schema(view) == {**dict(expected.schema), "event_timestamp": got.schema["event_timestamp"]}


def test_a_polars_transform_not_declared_key_local_is_refused_saying_why(spark: Any, tmp_path: Path) -> None:
    _trips(tmp_path)
    with pytest.raises(DefinitionError) as info:
        SparkEngine(tmp_path).read(_fares_view(key_local=False))
    text = str(info.value)
    assert "'fares'" in text and "transform_key_local=True" in text and "SQL transform" in text
    assert 'engine = "duckdb"' in text and "cannot run the polars transform" in text


def test_the_key_local_declaration_is_not_part_of_the_version() -> None:
    from featurestore.registry.discover import Definitions
    from featurestore.registry.spec import build_specs

    versions = []
    for key_local in (False, True):
        view = _fares_view(key_local)
        defs = Definitions(views={"fares": view})
        versions.append(build_specs(defs)["views"]["fares"]["version"])
    assert versions[0] == versions[1]


KEY_LOCAL_VIEWS = """
import polars as pl
from featurestore import Entity, Feature, FeatureView, Float64, ParquetSource

driver = Entity("driver", join_keys=["driver_id"])


def running_total(lf):  # defined in the repository's package, which the executors cannot import
    return lf.sort("event_timestamp").select(
        "driver_id", "event_timestamp", pl.col("fare").cum_sum().over("driver_id").alias("total")
    )


fares = FeatureView(
    "fares", [driver], ParquetSource("data/trips.parquet"), [Feature("total", Float64)],
    transform=running_total, transform_key_local=KEY_LOCAL,
)
"""


def test_ingest_runs_a_definitions_transform_in_the_executors_or_writes_nothing(spark: Any, make_repo: Any) -> None:
    from featurestore import FeatureStore
    from featurestore.errors import FeatureStoreError

    config = 'project = "s"\nengine = "spark"\n'
    refused = make_repo({"views.py": KEY_LOCAL_VIEWS.replace("KEY_LOCAL", "False")}, config=config, name="refused")
    _trips(refused)
    with pytest.raises(FeatureStoreError, match="running_total.*transform_key_local=True"):
        FeatureStore(refused).apply()  # the plan's data check reads the source through the transform
    assert not list((refused / "data").parent.rglob("v=*"))  # nothing written offline

    # A package name of its own: the executors' working directory (this checkout) has a `definitions`.
    repo = make_repo({}, config=config + 'definitions = "fare_defs"\n')
    (repo / "fare_defs").mkdir()
    (repo / "fare_defs" / "__init__.py").touch()
    (repo / "fare_defs" / "views.py").write_text(KEY_LOCAL_VIEWS.replace("KEY_LOCAL", "True"))
    _trips(repo)
    store = FeatureStore(repo)
    store.apply()
    [result] = store.ingest()
    assert result.rows_written == 7
    stored = pl.read_parquet(store.layout.files("fares", store.state().view("fares").version))
    totals = stored.sort("driver_id", "event_timestamp")["total"].to_list()
    assert totals == [1.0, 3.0, 6.0, 10.0, 30.0, 5.0, 12.0]
