"""Ingest into the Parquet offline store: layout, de-duplication, idempotence, ranges, types, transforms, crashes."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from featurestore import DefinitionError, FeatureStore, GateRejectedError
from featurestore.offline.commit import Transaction, recover
from featurestore.offline.layout import PART_FILE, OfflineLayout

VIEWS = """
from featurestore import CsvSource, Entity, Feature, FeatureView, Float64, Int64, ParquetSource, SqlSource
import polars as pl

driver = Entity("driver", join_keys=["driver_id"])
stats = FeatureView(
    "stats",
    entities=[driver],
    source={source},
    features=[{features}],
    transform={transform},
)
"""

FEATURES = 'Feature("rate", Float64), Feature("trips", Int64)'
PARQUET = 'ParquetSource("data/src.parquet", created="created")'


def views_src(source: str = PARQUET, features: str = FEATURES, transform: str = "None") -> str:
    return VIEWS.format(source=source, features=features, transform=transform)


def t(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, minute)


def source_frame(rows: list[tuple]) -> pl.DataFrame:
    """Rows of (driver_id, event_timestamp, created, rate, trips)."""
    return pl.DataFrame(
        rows,
        schema={
            "driver_id": pl.Int64,
            "event_timestamp": pl.Datetime("us"),
            "created": pl.Datetime("us"),
            "rate": pl.Float64,
            "trips": pl.Int64,
        },
        orient="row",
    )


BASE_ROWS = [
    (1, t(1, 10), t(1, 10), 0.1, 1),
    (2, t(1, 11), t(1, 11), 0.2, 2),
    (1, t(2, 9), t(2, 9), 0.3, 3),
    (2, t(2, 15), t(2, 15), 0.4, 4),
    (1, t(3, 8), t(3, 8), 0.5, 5),
]


def write_source(repo: Path, rows: list[tuple] | pl.DataFrame) -> None:
    df = rows if isinstance(rows, pl.DataFrame) else source_frame(rows)
    (repo / "data").mkdir(exist_ok=True)
    df.write_parquet(repo / "data" / "src.parquet")


def new_repo(
    make_repo, rows=BASE_ROWS, name: str = "repo", data_check: bool = True, **kwargs
) -> tuple[Path, FeatureStore]:
    repo = make_repo({"views.py": views_src(**kwargs)}, name=name)
    if rows is not None:
        write_source(repo, rows)
    store = FeatureStore(repo)
    # data_check=False: tests of what ingest itself refuses register definitions apply would refuse.
    store.apply(data_check=data_check)
    return repo, store


def read_store(store: FeatureStore, view: str = "stats") -> pl.DataFrame:
    """The view's offline rows as DuckDB reads them straight from the Hive-partitioned files."""
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    glob = f"{store.settings.offline_root}/{view}/*/*/*.parquet"
    df = con.sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning=true)").pl()
    return df.with_columns(pl.col("v").cast(pl.String), pl.col("date").cast(pl.String)).sort(
        ["driver_id", "event_timestamp"]
    )


def values(df: pl.DataFrame) -> list[tuple]:
    return [
        (r["driver_id"], r["event_timestamp"].replace(tzinfo=None), r["rate"], r["trips"])
        for r in df.sort(["driver_id", "event_timestamp"]).iter_rows(named=True)
    ]


def test_layout_is_hive_style_and_readable_by_duckdb(make_repo) -> None:
    _, store = new_repo(make_repo)
    version = store.state().view("stats").version
    [result] = store.ingest()
    assert (result.view, result.version, result.rows_read, result.rows_written) == ("stats", version, 5, 5)
    root = store.settings.offline_root
    files = sorted(p.relative_to(root).as_posix() for p in (root / "stats").rglob("*") if p.is_file())
    assert files == [f"stats/v={version}/date=2024-01-0{d}/{PART_FILE}" for d in (1, 2, 3)]
    df = read_store(store)
    assert df.columns[:6] == ["driver_id", "event_timestamp", "rate", "trips", "created_timestamp", "__fs_pushed"]
    assert sorted(df.columns[6:]) == ["date", "v"]  # the Hive partition columns
    assert df.schema["event_timestamp"] == pl.Datetime("us", "UTC")
    assert df.schema["rate"] == pl.Float64 and df.schema["trips"] == pl.Int64
    assert set(df["v"]) == {version}
    # Each row sits in the partition of its UTC event date.
    assert df["date"].to_list() == [str(ts.date()) for ts in df["event_timestamp"]]
    assert values(df) == [(r[0], r[1], r[3], r[4]) for r in sorted(BASE_ROWS)]


def test_one_row_per_key_and_event_time_greatest_created_wins_then_last_read(make_repo) -> None:
    rows = [
        # Same key and event time: the greatest created wins, wherever it sits.
        (1, t(1, 10), t(1, 12), 1.0, 10),
        (1, t(1, 10), t(1, 14), 2.0, 20),
        (1, t(1, 10), t(1, 11), 3.0, 30),
        # Same key, event time and created: the last row read wins.
        (2, t(1, 10), t(1, 10), 4.0, 40),
        (2, t(1, 10), t(1, 10), 5.0, 50),
        # Same event time, other key: kept.
        (3, t(1, 10), t(1, 10), 6.0, 60),
        # A null created loses against any created time.
        (4, t(2, 10), t(2, 10), 7.0, 70),
        (4, t(2, 10), None, 8.0, 80),
    ]
    _, store = new_repo(make_repo, rows)
    [result] = store.ingest()
    assert (result.rows_read, result.rows_written) == (8, 4)
    assert values(read_store(store)) == [
        (1, t(1, 10), 2.0, 20),
        (2, t(1, 10), 5.0, 50),
        (3, t(1, 10), 6.0, 60),
        (4, t(2, 10), 7.0, 70),
    ]


def test_last_read_wins_without_a_created_column(make_repo) -> None:
    rows = [(1, t(1, 10), None, 1.0, 1), (1, t(1, 10), None, 2.0, 2), (1, t(1, 10), None, 3.0, 3)]
    _, store = new_repo(make_repo, rows, source='ParquetSource("data/src.parquet")')
    store.ingest()
    assert values(read_store(store)) == [(1, t(1, 10), 3.0, 3)]


def test_reingest_is_idempotent(make_repo) -> None:
    _, store = new_repo(make_repo)
    store.ingest()
    first = read_store(store)
    files = sorted(store.layout.files("stats", store.state().view("stats").version))
    for _ in range(3):
        store.ingest()
        assert_frame_equal(read_store(store), first)
    assert first.height == 5
    assert sorted(store.layout.files("stats", store.state().view("stats").version)) == files
    # Ranged re-ingests too.
    for _ in range(2):
        store.ingest(start=t(1), end=t(3))
        store.ingest(start="2024-01-02T00:00:00", end="2024-01-02T12:00:00")
        assert_frame_equal(read_store(store), first)


def test_ranged_reingest_replaces_only_that_range(make_repo) -> None:
    repo, store = new_repo(make_repo)
    store.ingest()
    changed = [
        (1, t(1, 10), t(1, 10), 9.1, 91),  # outside the range: must not be taken
        (2, t(1, 11), t(1, 11), 0.2, 2),
        (1, t(2, 9), t(2, 9), 9.3, 93),  # inside: updated
        # (2, day 2 15:00) removed from the source: inside the range, must disappear
        (3, t(2, 20), t(2, 20), 9.9, 99),  # inside: new
        (1, t(3, 8), t(3, 8), 9.5, 95),  # outside (end is exclusive)
    ]
    write_source(repo, changed)
    store.ingest(start=datetime(2024, 1, 2), end=datetime(2024, 1, 3))
    assert values(read_store(store)) == [
        (1, t(1, 10), 0.1, 1),
        (1, t(2, 9), 9.3, 93),
        (1, t(3, 8), 0.5, 5),
        (2, t(1, 11), 0.2, 2),
        (3, t(2, 20), 9.9, 99),
    ]


def test_ranged_reingest_within_a_day_keeps_the_rest_of_that_day(make_repo) -> None:
    rows = [
        (1, t(2, 6), t(2, 6), 0.1, 1),
        (1, t(2, 12), t(2, 12), 0.2, 2),
        (1, t(2, 18), t(2, 18), 0.3, 3),
    ]
    repo, store = new_repo(make_repo, rows)
    store.ingest()
    write_source(repo, [(1, t(2, 6), t(2, 6), 9.1, 91), (1, t(2, 18), t(2, 18), 9.3, 93)])
    store.ingest(start=t(2, 12), end=t(2, 13))
    assert values(read_store(store)) == [(1, t(2, 6), 0.1, 1), (1, t(2, 18), 0.3, 3)]
    assert read_store(store)["date"].unique().to_list() == ["2024-01-02"]


def test_full_reingest_drops_days_no_longer_in_the_source(make_repo) -> None:
    repo, store = new_repo(make_repo)
    store.ingest()
    version = store.state().view("stats").version
    assert store.layout.dates("stats", version) == ["2024-01-01", "2024-01-02", "2024-01-03"]
    write_source(repo, [r for r in BASE_ROWS if r[1].day != 2])
    store.ingest()
    assert store.layout.dates("stats", version) == ["2024-01-01", "2024-01-03"]
    assert not (store.layout.version_dir("stats", version) / "date=2024-01-02").exists()
    assert values(read_store(store)) == [(r[0], r[1], r[3], r[4]) for r in sorted(BASE_ROWS) if r[1].day != 2]


def test_naive_timestamps_are_utc_and_aware_ones_are_converted(make_repo) -> None:
    ny = ZoneInfo("America/New_York")
    aware = pl.DataFrame(
        {
            "driver_id": [1, 2],
            # 20:00 in New York on Jan 1 is 01:00 UTC on Jan 2.
            "event_timestamp": [datetime(2024, 1, 1, 20, tzinfo=ny), datetime(2024, 1, 1, 12, tzinfo=ny)],
            "created": [datetime(2024, 1, 1, 20, tzinfo=ny), datetime(2024, 1, 1, 12, tzinfo=ny)],
            "rate": [1.0, 2.0],
            "trips": [1, 2],
        }
    )
    assert aware.schema["event_timestamp"] == pl.Datetime("us", "America/New_York")
    _, store = new_repo(make_repo, aware, name="aware")
    store.ingest()
    df = read_store(store)
    assert df["event_timestamp"].to_list() == [
        datetime(2024, 1, 2, 1, tzinfo=UTC),
        datetime(2024, 1, 1, 17, tzinfo=UTC),
    ]
    assert df["date"].to_list() == ["2024-01-02", "2024-01-01"]

    _, naive_store = new_repo(make_repo, [(1, t(1, 23, 30), None, 1.0, 1)], name="naive")
    naive_store.ingest()
    df = read_store(naive_store)
    assert df["event_timestamp"].to_list() == [datetime(2024, 1, 1, 23, 30, tzinfo=UTC)]
    assert df["date"].to_list() == ["2024-01-01"]


def assert_nothing_written(store: FeatureStore) -> None:
    root = store.settings.offline_root
    assert not (root / "stats").exists() or not list((root / "stats").rglob("*.parquet"))


def test_feature_missing_from_transformed_frame(make_repo) -> None:
    _, store = new_repo(make_repo, transform='lambda lf: lf.drop("trips")', data_check=False)
    with pytest.raises(DefinitionError) as info:
        store.ingest()
    msg = str(info.value)
    assert "module definitions.views" in msg and "'stats'" in msg and "trips" in msg and "missing" in msg
    assert_nothing_written(store)


def test_dtype_mismatch_is_a_data_problem_the_gate_reports_and_nothing_is_written(make_repo) -> None:
    df = source_frame(BASE_ROWS).with_columns(pl.col("rate").cast(pl.String) + pl.lit("x"))
    _, store = new_repo(make_repo, df, data_check=False)
    with pytest.raises(GateRejectedError) as info:
        store.ingest()
    result = info.value.result
    assert result.failures["rate: dtype"]["count"] == 5 and result.rows_quarantined == 5
    assert any("'rate'" in n and "0.1x" in n for n in result.notes)
    assert "module" not in str(info.value)  # not a definition error
    assert_nothing_written(store)


def test_failing_transform_names_module_and_view(make_repo) -> None:
    _, store = new_repo(make_repo, transform="lambda lf: 1 / 0", data_check=False)
    with pytest.raises(DefinitionError) as info:
        store.ingest()
    assert "module definitions.views" in str(info.value) and "'stats'" in str(info.value)
    assert "ZeroDivisionError" in str(info.value)
    assert_nothing_written(store)


def test_one_bad_view_does_not_change_another_views_data(make_repo) -> None:
    _, store = new_repo(make_repo)
    store.ingest()
    before = read_store(store)
    write_source(store.repo, source_frame(BASE_ROWS).with_columns(pl.col("trips").cast(pl.String) + "!"))
    with pytest.raises(GateRejectedError):
        store.ingest()
    assert_frame_equal(read_store(store), before)


EXPECTED_DOUBLED = [(1, t(1, 10), 0.2, 1), (1, t(2, 9), 0.6, 3), (1, t(3, 8), 1.0, 5), (2, t(1, 11), 0.4, 2)]


def test_polars_transform(make_repo) -> None:
    transform = "lambda lf: lf.filter(pl.col('trips') != 4).with_columns(pl.col('rate') * 2)"
    _, store = new_repo(make_repo, transform=transform)
    store.ingest()
    assert values(read_store(store)) == EXPECTED_DOUBLED


def test_duckdb_sql_transform_over_source(make_repo) -> None:
    sql = '"SELECT driver_id, event_timestamp, created, rate * 2 AS rate, trips FROM source WHERE trips <> 4"'
    _, store = new_repo(make_repo, transform=sql)
    store.ingest()
    assert values(read_store(store)) == EXPECTED_DOUBLED


def test_sql_source(make_repo) -> None:
    source = (
        'SqlSource("SELECT driver_id, event_timestamp, created, rate * 2 AS rate, trips '
        'FROM read_parquet(\'data/src.parquet\') WHERE trips <> 4", created="created")'
    )
    repo, store = new_repo(make_repo, source=source)
    # Relative paths in the query resolve against the repository, not the working directory.
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        store.ingest()
    finally:
        os.chdir(cwd)
    assert values(read_store(store)) == EXPECTED_DOUBLED


def test_csv_source(make_repo) -> None:
    repo, store = new_repo(
        make_repo, rows=None, source='CsvSource("data/src.csv", created="created")', data_check=False
    )
    (repo / "data").mkdir(exist_ok=True)
    source_frame(BASE_ROWS).write_csv(repo / "data" / "src.csv")
    store.ingest()
    df = read_store(store)
    assert values(df) == [(r[0], r[1], r[3], r[4]) for r in sorted(BASE_ROWS)]
    assert df.schema["trips"] == pl.Int64


def test_ingest_refuses_when_definitions_changed_since_apply(make_repo) -> None:
    repo, store = new_repo(make_repo)
    (repo / "definitions" / "views.py").write_text(views_src(features=FEATURES + ', Feature("more", Float64)'))
    shutil.rmtree(repo / "definitions" / "__pycache__", ignore_errors=True)
    with pytest.raises(DefinitionError) as info:
        store.ingest()
    assert "apply" in str(info.value) and "'stats'" in str(info.value) and "definitions.views" in str(info.value)
    assert_nothing_written(store)


# -- crash safety --------------------------------------------------------------------------------

CHANGED_ROWS = [
    (1, t(1, 10), t(1, 10), 7.1, 71),
    (2, t(2, 15), t(2, 15), 7.4, 74),
    (3, t(4, 1), t(4, 1), 7.6, 76),
]


def test_uncommitted_transaction_is_discarded(make_repo) -> None:
    _, store = new_repo(make_repo)
    store.ingest()
    before = read_store(store)
    version = store.state().view("stats").version
    layout = OfflineLayout(store.settings.offline_root)
    txn = Transaction(layout, "stats", version)
    source_frame(CHANGED_ROWS).write_parquet(txn.stage_path("2024-01-01"))
    source_frame(CHANGED_ROWS).write_parquet(txn.stage_path("2024-01-09"))
    # Staged files are invisible to readers.
    assert_frame_equal(read_store(store), before)
    assert recover(layout, "stats") == 1
    assert not txn.dir.exists()
    assert_frame_equal(read_store(store), before)
    assert layout.dates("stats", version) == ["2024-01-01", "2024-01-02", "2024-01-03"]


def test_committed_transaction_is_rolled_forward(make_repo) -> None:
    # The store a clean ingest of the changed source gives ...
    _, clean = new_repo(make_repo, CHANGED_ROWS, name="clean")
    clean.ingest()
    expected = read_store(clean)
    version = clean.state().view("stats").version
    clean_layout = OfflineLayout(clean.settings.offline_root)

    # ... is what a crashed store gives after recover, once its commit record is on disk.
    _, store = new_repo(make_repo, name="crashed")
    store.ingest()
    assert store.state().view("stats").version == version
    layout = OfflineLayout(store.settings.offline_root)
    txn = Transaction(layout, "stats", version)
    for day in clean_layout.dates("stats", version):
        shutil.copyfile(clean_layout.partition_file("stats", version, day), txn.stage_path(day))
    delete = sorted(set(layout.dates("stats", version)) - set(clean_layout.dates("stats", version)))
    assert delete == ["2024-01-03"]
    record = {"view": "stats", "version": version, "write": txn.written, "delete": delete}
    (txn.dir / "commit.json").write_bytes(orjson.dumps(record))
    # The crash happened after the first partition was moved into place.
    first = txn.written[0]
    os.replace(txn.dir / f"date={first}" / PART_FILE, layout.partition_file("stats", version, first))

    assert recover(layout, "stats") == 1
    assert not txn.dir.exists()
    assert_frame_equal(read_store(store), expected)
    assert layout.dates("stats", version) == clean_layout.dates("stats", version)
    assert recover(layout, "stats") == 0


def test_next_ingest_recovers_leftover_transactions(make_repo) -> None:
    _, store = new_repo(make_repo)
    store.ingest()
    expected = read_store(store)
    version = store.state().view("stats").version
    layout = OfflineLayout(store.settings.offline_root)
    txn = Transaction(layout, "stats", version)
    source_frame(CHANGED_ROWS).write_parquet(txn.stage_path("2024-01-05"))
    store.ingest(start=t(1), end=t(2))
    assert not list(layout.txn_root("stats").iterdir())
    assert_frame_equal(read_store(store), expected)


INGEST_SCRIPT = """
import sys, time
from featurestore import FeatureStore
store = FeatureStore(sys.argv[1])
print("start", flush=True)
started = time.monotonic()
store.ingest()
print(time.monotonic() - started, flush=True)
"""


def big_rows(seed: int, days: int = 20, per_day: int = 300) -> pl.DataFrame:
    rng = random.Random(seed)
    rows = []
    for d in range(days):
        for i in range(per_day):
            ts = datetime(2024, 1, 1) + timedelta(days=d, seconds=rng.randrange(86400))
            rows.append((i % 50, ts, ts, rng.random(), rng.randrange(1000)))
    return source_frame(rows)


def run_ingest(repo: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", INGEST_SCRIPT, str(repo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def sigkill_trials(make_repo, trials: int) -> None:
    """Kill ingests at random moments: the store is always all-old or all-new, and a rerun equals a clean run."""
    from featurestore.offline.commit import finish_committed

    old, new = big_rows(1, days=25), big_rows(2, days=20)
    _, clean = new_repo(make_repo, new, name="clean")
    clean.ingest()
    expected = read_store(clean)

    repo, store = new_repo(make_repo, old, name="killed")
    store.ingest()
    before = read_store(store)
    write_source(repo, new)
    # How long the ingest itself takes in a subprocess, to aim the kills inside it.
    proc = run_ingest(repo)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    duration = float(out.decode().split()[-1])
    assert_frame_equal(read_store(store), expected)

    rng = random.Random()
    for trial in range(trials):
        write_source(repo, old)
        store.ingest()
        write_source(repo, new)
        delay = rng.uniform(0, duration)
        proc = run_ingest(repo)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"start"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        where = f"trial {trial}: killed after {delay:.3f}s of {duration:.3f}s"
        # What a reader sees right after the crash: the old data or the new, never a mix.
        finish_committed(store.layout, "stats")
        seen = read_store(store)
        assert seen.equals(before) or seen.equals(expected), f"{where}: a reader saw a partial ingest"
        store.ingest()
        try:
            assert_frame_equal(read_store(store), expected)
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from None
        assert not list(store.layout.txn_root("stats").iterdir())
        assert all(
            len(list(d.iterdir())) == 1 for d in store.layout.version_dir("stats", seen_version(store)).iterdir()
        )


def seen_version(store: FeatureStore) -> str:
    return store.state().view("stats").version


def test_sigkill_during_ingest_then_rerun_equals_a_clean_run(make_repo) -> None:
    sigkill_trials(make_repo, 3)


@pytest.mark.stress
def test_sigkill_during_ingest_stress(make_repo) -> None:
    sigkill_trials(make_repo, 20)


def test_a_reader_finishes_a_committed_write_but_leaves_live_staging_alone(make_repo) -> None:
    _, store = new_repo(make_repo)
    store.ingest()
    version = store.state().view("stats").version
    layout = OfflineLayout(store.settings.offline_root)
    # a live ingest's staging (no commit record yet) ...
    live = Transaction(layout, "stats", version)
    source_frame(CHANGED_ROWS).write_parquet(live.stage_path("2024-01-07"))
    # ... and a crashed ingest whose commit record is on disk: it deletes day 3
    crashed = Transaction(layout, "stats", version)
    record = {"view": "stats", "version": version, "write": [], "delete": ["2024-01-03"]}
    (crashed.dir / "commit.json").write_bytes(orjson.dumps(record))
    entity = pl.DataFrame({"driver_id": [1], "event_timestamp": [t(3, 9)]})
    out = store.get_training_set(entity, ["stats:rate"])
    assert out["rate"].to_list() == [0.3]  # day 3's row is gone: the committed write was finished
    assert not crashed.dir.exists()
    assert live.dir.exists() and (live.dir / "date=2024-01-07" / PART_FILE).exists()


def test_concurrent_readers_see_a_whole_write_or_none_of_it(make_repo) -> None:
    import threading

    from featurestore.offline.commit import read_snapshot
    from featurestore.offline.ingest import write_view

    def stored(store: FeatureStore) -> pl.DataFrame:
        spec = store.state().view("stats")
        files = store.layout.files("stats", spec.version)
        return pl.concat([pl.read_parquet(f) for f in files]).sort(["driver_id", "event_timestamp"])

    _, a = new_repo(make_repo, big_rows(1, days=12), name="a")
    a.ingest()
    _, store = new_repo(make_repo, big_rows(2, days=9), name="b")
    store.ingest()
    old, new = stored(store), stored(a)
    spec = store.state().view("stats")
    done = threading.Event()
    seen: list[str] = []
    errors: list[BaseException] = []

    def reader() -> None:
        while not done.is_set():
            try:
                with read_snapshot(store.layout, ["stats"]):
                    df = stored(store)
            except BaseException as exc:  # a vanished file would land here
                errors.append(exc)
                return
            seen.append("old" if df.equals(old) else "new" if df.equals(new) else "MIXED")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for th in threads:
        th.start()
    try:
        for i in range(12):
            write_view(store.layout, spec, new if i % 2 == 0 else old)
    finally:
        done.set()
        for th in threads:
            th.join(10)
    assert errors == []
    assert seen and "MIXED" not in seen
