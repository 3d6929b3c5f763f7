"""The offline store and the registry on object storage (a real moto S3 server): end to end, commits, crashes, races."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from featurestore import FeatureStore
from featurestore.errors import IngestError
from featurestore.offline.commit import Transaction, read_snapshot, recover
from featurestore.offline.object_log import LOG_DIR, ObjectLayout, ObjectTransaction, collect_garbage
from featurestore.registry.store import Registry

VIEWS = """
from featurestore import Entity, Feature, FeatureView, Float64, Int64, ParquetSource

driver = Entity("driver", join_keys=["driver_id"])
stats = FeatureView(
    "stats",
    entities=[driver],
    source=ParquetSource("data/src.parquet", created="created"),
    features=[Feature("rate", Float64), Feature("trips", Int64)],
)
"""


def t(day: int, hour: int = 0) -> datetime:
    return datetime(2024, 1, day, hour)


def rows_frame(rows: list[tuple]) -> pl.DataFrame:
    """Rows of (driver_id, event_timestamp, created, rate, trips)."""
    schema = {
        "driver_id": pl.Int64,
        "event_timestamp": pl.Datetime("us"),
        "created": pl.Datetime("us"),
        "rate": pl.Float64,
        "trips": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


BASE = [
    (1, t(1, 10), t(1, 10), 0.1, 1),
    (2, t(1, 11), t(1, 11), 0.2, 2),
    (1, t(2, 9), t(2, 9), 0.3, 3),
    (2, t(2, 15), t(2, 15), 0.4, 4),
    (1, t(3, 8), t(3, 8), 0.5, 5),
]


def big_rows(seed: int, days: int, per_day: int = 200) -> pl.DataFrame:
    rng = random.Random(seed)
    rows = []
    for d in range(days):
        for i in range(per_day):
            ts = datetime(2024, 1, 1) + timedelta(days=d, seconds=rng.randrange(86400))
            rows.append((i % 40, ts, ts, rng.random(), rng.randrange(1000)))
    return rows_frame(rows)


def write_source(repo: Path, rows: list[tuple] | pl.DataFrame) -> None:
    df = rows if isinstance(rows, pl.DataFrame) else rows_frame(rows)
    (repo / "data").mkdir(exist_ok=True)
    df.write_parquet(repo / "data" / "src.parquet")


def s3_config(root: str) -> str:
    return f'project = "test"\noffline_root = "{root}/offline"\nregistry = "{root}/registry.json"\n'


def new_repo(make_repo, root: str, rows=BASE, name: str = "repo") -> tuple[Path, FeatureStore]:
    repo = make_repo({"views.py": VIEWS}, config=s3_config(root), name=name)
    write_source(repo, rows)
    store = FeatureStore(repo)
    store.apply()
    return repo, store


def read_store(store: FeatureStore, view: str = "stats") -> pl.DataFrame:
    """What a featurestore reader sees: the files the newest commit record names."""
    layout = store.layout
    version = store.state().view(view).version
    with read_snapshot(layout, [view]):
        parts = [layout.read_partition(view, version, day) for day in layout.dates(view, version)]
    if not parts:
        return pl.DataFrame()
    # diagonal: a day a push rewrote also holds the pushed rows' created_timestamp
    return pl.concat(parts, how="diagonal").sort(["driver_id", "event_timestamp"])


def data_keys(layout: ObjectLayout, view: str = "stats") -> list[str]:
    return [o.key for o in layout.storage.list(f"{view}/")]


def test_ingest_training_set_and_materialize_on_s3(make_repo, s3_root: str) -> None:
    repo, store = new_repo(make_repo, s3_root)
    assert isinstance(store.layout, ObjectLayout)
    result = store.ingest()
    assert [r.rows_written for r in result] == [5]
    version = store.state().view("stats").version
    # the layout: Hive partitions of immutable objects and one commit record
    keys = data_keys(store.layout)
    assert [k.rsplit("/", 1)[0] for k in keys] == [f"stats/v={version}/date=2024-01-0{d}" for d in (1, 2, 3)]
    assert all(k.rsplit("/", 1)[1].startswith("part-") for k in keys)
    log = [o.key for o in store.layout.storage.list(f"{LOG_DIR}/stats/")]
    assert log == [f"{LOG_DIR}/stats/000000000001.json"]
    record = orjson.loads(store.layout.storage.read(log[0])[0])
    assert sorted(record["files"][version].values()) == keys
    assert not (repo / "data" / "offline" / "stats").exists()  # nothing of the view on local disk
    assert not (repo / "data" / "registry.json").exists()

    entity = pl.DataFrame({"driver_id": [1, 2, 1, 3], "event_timestamp": [t(2, 10), t(2, 12), t(3, 9), t(3, 9)]})
    out = store.get_training_set(entity, ["stats:rate", "stats:trips"])
    assert out["rate"].to_list() == [0.3, 0.2, 0.5, None]
    assert out["trips"].to_list() == [3, 2, 5, None]

    # the same training set from a local-disk copy of the repository
    local = make_repo({"views.py": VIEWS}, name="local")
    write_source(local, BASE)
    local_store = FeatureStore(local)
    local_store.apply()
    local_store.ingest()
    assert_frame_equal(out, local_store.get_training_set(entity, ["stats:rate", "stats:trips"]))

    # a saved training set's manifest records the s3 objects and rebuilds from them
    saved = repo / "ts.parquet"
    store.get_training_set(entity, ["stats:rate"], out=saved)
    manifest_file = saved.with_name(saved.name + ".manifest.json")
    manifest = orjson.loads(manifest_file.read_bytes())
    assert all(f["path"].startswith("s3://") for f in manifest["views"]["stats"]["files"])
    assert_frame_equal(store.rebuild_training_set(manifest_file), pl.read_parquet(saved))

    # the UI's partition table reads row counts from the objects' footers
    from featurestore.server.ui.views import RowCounts, _partition

    parts = [_partition(RowCounts(), f) for f in store.layout.files("stats", version)]
    assert [(p["date"], p["rows"]) for p in parts] == [("2024-01-01", 2), ("2024-01-02", 2), ("2024-01-03", 1)]

    # a drift baseline profiles the objects too
    from featurestore.validation.profile import profile_view

    spec = store.state().view("stats")
    profile = profile_view(store.settings.offline_root, spec, store.layout.files("stats", version), save=False)
    assert profile["rows"] == 5

    store.materialize(end=t(4))
    online = store.get_online_features(["stats:rate", "stats:trips"], {"driver_id": [1, 2]})
    assert online.to_dict() == {"driver_id": [1, 2], "rate": [0.5, 0.4], "trips": [5, 4]}


def test_range_ingest_and_push_merge_on_s3(make_repo, s3_root: str) -> None:
    repo, store = new_repo(make_repo, s3_root)
    store.ingest()
    write_source(repo, [(1, t(2, 9), t(2, 9), 9.9, 99), (3, t(2, 20), t(2, 20), 7.0, 7)])
    store.ingest(start=t(2), end=t(3))  # replaces day 2 only
    seen = read_store(store)
    assert seen.select("driver_id", "rate").rows() == [(1, 0.1), (1, 9.9), (1, 0.5), (2, 0.2), (3, 7.0)]
    store.push("stats", [{"driver_id": 2, "event_timestamp": t(3, 1), "rate": 4.0, "trips": 4}], to_offline=True)
    seen = read_store(store)
    assert (2, 4.0) in seen.select("driver_id", "rate").rows() and seen.height == 6
    assert len(store.layout.storage.list(f"{LOG_DIR}/stats/")) == 3


def test_a_reader_keeps_its_snapshot_while_a_writer_commits(make_repo, s3_root: str) -> None:
    repo, store = new_repo(make_repo, s3_root)
    store.ingest()
    before = read_store(store)
    version = store.state().view("stats").version
    with read_snapshot(store.layout, ["stats"]):
        files = store.layout.files("stats", version)
        write_source(repo, [(5, t(4), t(4), 1.0, 1)])
        other = FeatureStore(repo)  # another process's view of the store
        other.ingest()
        assert store.layout.files("stats", version) == files  # still the pinned record
        entity = pl.DataFrame({"driver_id": [1], "event_timestamp": [t(3, 9)]})
        assert store.get_training_set(entity, ["stats:rate"])["rate"].to_list() == [0.5]
    assert store.layout.files("stats", version) != files
    assert read_store(store).height == 1 and before.height == 5


def test_two_writers_based_on_one_record_only_one_commits(make_repo, s3_root: str) -> None:
    _, store = new_repo(make_repo, s3_root)
    store.ingest()
    before = read_store(store)
    layout, version = store.layout, store.state().view("stats").version
    first, second = Transaction(layout, "stats", version), Transaction(layout, "stats", version)
    for txn, rate in ((first, 1.5), (second, 2.5)):
        staged = rows_frame([(9, t(5), t(5), rate, 9)]).drop("created")
        staged = staged.with_columns(pl.col("event_timestamp").dt.replace_time_zone("UTC"))
        staged.write_parquet(txn.stage_path("2024-01-05"))
    first.commit()
    with pytest.raises(IngestError, match="written by another process"):
        second.commit()
    second.abort()
    seen = read_store(store)
    assert seen.filter(pl.col("driver_id") == 9)["rate"].to_list() == [1.5]
    assert seen.height == before.height + 1
    # the loser's upload is gone: every data object is named by the newest record
    record = layout.newest("stats")
    assert sorted(k for days in record.files.values() for k in days.values()) == data_keys(layout)


def test_an_overtaken_write_starts_again_on_the_new_state(make_repo, s3_root: str, monkeypatch) -> None:
    """A push whose commit record another push took first is redone on top of it: no update is lost."""
    repo, store = new_repo(make_repo, s3_root)
    store.ingest()
    real, overtaken = ObjectTransaction.commit, []

    def commit(self: ObjectTransaction, delete=()) -> None:
        if not overtaken:  # another process commits between this write's read and its commit
            overtaken.append(self.base.seq)
            FeatureStore(repo).push("stats", [{"driver_id": 7, "event_timestamp": t(3, 1), "rate": 7.0, "trips": 7}])
            FeatureStore(repo).push(
                "stats", [{"driver_id": 7, "event_timestamp": t(3, 1), "rate": 7.0, "trips": 7}], to_offline=True
            )
        real(self, delete)

    monkeypatch.setattr(ObjectTransaction, "commit", commit)
    store.push("stats", [{"driver_id": 8, "event_timestamp": t(3, 2), "rate": 8.0, "trips": 8}], to_offline=True)
    assert overtaken == [1]
    assert store.layout.newest("stats").seq == 3  # type: ignore[attr-defined]
    seen = read_store(store)
    assert seen.height == 7 and {7, 8} <= set(seen["driver_id"].to_list())
    # 3 ingested days, the other push's day 3 and the redone one: the overtaken upload was deleted
    assert len(data_keys(store.layout)) == 5  # type: ignore[arg-type]


def test_garbage_collection_keeps_what_readers_may_need(make_repo, s3_root: str) -> None:
    repo, store = new_repo(make_repo, s3_root)
    store.ingest()
    write_source(repo, BASE[:2])
    store.ingest()
    layout = store.layout
    assert isinstance(layout, ObjectLayout)
    # an upload a crashed writer never committed
    layout.storage.write("stats/v=x/date=2024-01-09/part-crashed.parquet", b"not committed")
    assert recover(layout, "stats") == 0  # within the grace period nothing goes
    assert len(data_keys(layout)) == 3 + 1 + 1
    layout.gc_grace = timedelta(0)
    deleted = collect_garbage(layout, "stats", now=datetime.now().astimezone() + timedelta(seconds=1))
    assert deleted == 3 + 1  # the superseded partitions and the orphan
    newest = layout.newest("stats")
    assert newest.seq == 2
    assert sorted(k for days in newest.files.values() for k in days.values()) == data_keys(layout)
    assert [o.key for o in layout.storage.list(f"{LOG_DIR}/stats/")] == [f"{LOG_DIR}/stats/000000000002.json"]
    assert read_store(store).height == 2 and len(data_keys(layout)) == 1  # day 1: two rows, one object


def test_registry_on_s3_applies_with_conditional_writes(make_repo, s3_root: str) -> None:
    repo, store = new_repo(make_repo, s3_root)
    registry = Registry(f"{s3_root}/registry.json")
    assert registry.remote and registry.exists()
    assert registry.load().serial == 1
    stamp = registry.stamp()
    # concurrent applies from threads: every one lands, serialised by If-Match (no lost update)
    import threading

    state = registry.load()
    desired = state.specs()
    errors: list[BaseException] = []

    def apply(i: int) -> None:
        try:
            changed = {**desired, "entities": {**desired["entities"], f"extra{i}": {"name": f"extra{i}"}}}
            Registry(f"{s3_root}/registry.json").apply(changed, project="test")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=apply, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    after = registry.load()
    assert after.serial == 5 and [h["serial"] for h in after.history] == [1, 2, 3, 4, 5]
    assert registry.stamp() != stamp
    assert FeatureStore(repo).state().serial == 5


def test_a_damaged_commit_record_is_named(make_repo, s3_root: str) -> None:
    _, store = new_repo(make_repo, s3_root)
    store.ingest()
    store.layout.storage.write(f"{LOG_DIR}/stats/000000000002.json", b"{not json")
    with pytest.raises(IngestError, match=r"000000000002\.json is damaged"):
        store.ingest()


# -- crashes and races between processes --------------------------------------------------

INGEST_SCRIPT = """
import sys, time
from featurestore import FeatureStore
from featurestore.errors import IngestError
store = FeatureStore(sys.argv[1])
print("start", flush=True)
started = time.monotonic()
try:
    store.ingest()
except IngestError as exc:
    print("lost", exc, flush=True)
    sys.exit(3)
print(time.monotonic() - started, flush=True)
"""


def run_ingest(repo: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", INGEST_SCRIPT, str(repo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_sigkill_during_ingest_on_s3_then_rerun_equals_a_clean_run(make_repo, s3_root: str) -> None:
    old, new = big_rows(1, days=12), big_rows(2, days=10)
    _, clean = new_repo(make_repo, f"{s3_root}/clean", new, name="clean")
    clean.ingest()
    expected = read_store(clean)

    repo, store = new_repo(make_repo, f"{s3_root}/killed", old, name="killed")
    store.ingest()
    before = read_store(store)
    write_source(repo, new)
    proc = run_ingest(repo)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    duration = float(out.decode().split()[-1])
    assert_frame_equal(read_store(store), expected)

    rng = random.Random()
    for trial in range(4):
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
        seen = read_store(store)
        assert seen.equals(before) or seen.equals(expected), f"{where}: a reader saw a partial ingest"
        store.ingest()
        try:
            assert_frame_equal(read_store(store), expected)
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from None
    # once collected, the objects left are exactly those of a clean run: external globs read the same rows
    layout = store.layout
    assert isinstance(layout, ObjectLayout)
    layout.gc_grace = timedelta(0)
    collect_garbage(layout, "stats", now=datetime.now().astimezone() + timedelta(seconds=1))
    newest = layout.newest("stats")
    assert sorted(k for days in newest.files.values() for k in days.values()) == data_keys(layout)
    assert len(data_keys(layout)) == len(data_keys(clean.layout))  # type: ignore[arg-type]


def test_concurrent_writers_on_s3_one_wins_each_commit(make_repo, s3_root: str) -> None:
    """Two processes ingest different data into one view: each commit is one whole ingest, none is lost or mixed.

    Only one can create each commit record; the overtaken one starts again on the new state,
    so both land, one after the other, and the view holds the later one's data whole.
    """
    a_rows, b_rows = big_rows(3, days=8), big_rows(4, days=8)
    repo_a, store = new_repo(make_repo, s3_root, a_rows, name="a")
    repo_b = make_repo({"views.py": VIEWS}, config=s3_config(s3_root), name="b")
    write_source(repo_b, b_rows)
    _, only_a = new_repo(make_repo, f"{s3_root}/only-a", a_rows, name="only-a")
    _, only_b = new_repo(make_repo, f"{s3_root}/only-b", b_rows, name="only-b")
    only_a.ingest()
    only_b.ingest()
    expect = {"a": read_store(only_a), "b": read_store(only_b)}
    layout = store.layout
    assert isinstance(layout, ObjectLayout)
    for trial in range(3):
        seq_before = layout.newest("stats").seq
        procs = [run_ingest(repo_a), run_ingest(repo_b)]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"trial {trial}: {out.decode()} {err.decode()}"
        assert layout.newest("stats").seq == seq_before + 2  # both landed, one commit each
        # each commit record names one writer's objects only: read them back one by one
        for seq in (seq_before + 1, seq_before + 2):
            raw = layout.storage.read(f"{LOG_DIR}/stats/{seq:012d}.json")[0]
            files = [layout.storage.uri(k) for days in orjson.loads(raw)["files"].values() for k in days.values()]
            import pyarrow.parquet as pq

            fs = layout.storage.filesystem()
            parts = [pl.from_arrow(pq.read_table(layout.storage.fs_path(f), filesystem=fs)) for f in files]
            rows = pl.concat(parts).sort(["driver_id", "event_timestamp"])  # type: ignore[arg-type]
            assert rows.equals(expect["a"]) or rows.equals(expect["b"]), f"trial {trial}: commit {seq} mixes writers"
        seen = read_store(store)
        assert seen.equals(expect["a"]) or seen.equals(expect["b"]), f"trial {trial}: mixed data"


def test_settings_accept_object_storage_locations(tmp_path: Path) -> None:
    from featurestore.config import load_settings
    from featurestore.errors import ConfigError

    (tmp_path / "featurestore.toml").write_text('offline_root = "s3://b/features/"\nregistry = "s3://b/reg.json"\n')
    settings = load_settings(tmp_path, env={})
    assert settings.offline_location == "s3://b/features" and settings.registry_location == "s3://b/reg.json"
    assert settings.offline_root == tmp_path / "data" / "offline"  # gate reports, quarantine stay local
    local = load_settings(tmp_path, env={"FEATURESTORE_OFFLINE_ROOT": "store"})
    assert local.offline_location == tmp_path / "store" and local.offline_uri is None
    with pytest.raises(ConfigError, match=r"'registry': 's3://b' is not a complete location \(use s3://bucket/key\)"):
        load_settings(tmp_path, env={"FEATURESTORE_REGISTRY": "s3://b"})
    with pytest.raises(ConfigError, match="offline_root"):
        load_settings(tmp_path, env={"FEATURESTORE_OFFLINE_ROOT": "s3://"})
    with pytest.raises(ConfigError, match="unknown key 'offline_uri'"):
        (tmp_path / "featurestore.toml").write_text('offline_uri = "s3://b/x"\n')
        load_settings(tmp_path, env={})


@pytest.mark.parametrize("lost", ["retried", "unanswered"])
def test_a_commit_whose_answer_was_lost_is_a_commit(make_repo, s3_root: str, monkeypatch, lost: str) -> None:
    """The record PUT lands but its answer is lost: the client's retry finds the record (412), or the
    client gives up. The record read back is this write's: committed, nothing of it deleted."""
    from featurestore.storage import WriteConflictError

    _, store = new_repo(make_repo, s3_root)
    store.ingest()
    storage = store.layout.storage  # type: ignore[attr-defined]
    real = type(storage).create

    def create(self, key: str, data: bytes) -> None:  # type: ignore[no-untyped-def]
        real(self, key, data)
        if lost == "retried":
            raise WriteConflictError(f"{key} was written by someone else")
        raise ConnectionError("the answer was lost")

    monkeypatch.setattr(type(storage), "create", create)
    store.push("stats", [{"driver_id": 8, "event_timestamp": t(3, 2), "rate": 8.0, "trips": 8}], to_offline=True)
    monkeypatch.undo()
    record = store.layout.newest("stats")  # type: ignore[attr-defined]
    named = sorted(k for days in record.files.values() for k in days.values())
    assert record.seq == 2 and set(named) <= set(data_keys(store.layout))  # type: ignore[arg-type]
    seen = read_store(FeatureStore(store.repo))
    assert seen.height == 6 and seen.filter(pl.col("driver_id") == 8)["rate"].to_list() == [8.0]


def test_a_commit_that_may_have_failed_deletes_nothing(make_repo, s3_root: str, monkeypatch) -> None:
    """No answer and the record cannot be read back: the error goes on, the uploads stay (collected
    later once no record names them), the store is as it was."""
    from featurestore.offline.object_log import ObjectTransaction

    _, store = new_repo(make_repo, s3_root)
    store.ingest()
    before, objects = read_store(store), data_keys(store.layout)  # type: ignore[arg-type]
    storage = store.layout.storage  # type: ignore[attr-defined]

    def create(self, key: str, data: bytes) -> None:  # type: ignore[no-untyped-def]
        raise ConnectionError("no answer")

    monkeypatch.setattr(type(storage), "create", create)
    monkeypatch.setattr(ObjectTransaction, "_landed", lambda self, key, body: None)
    with pytest.raises(ConnectionError):
        store.push("stats", [{"driver_id": 8, "event_timestamp": t(3, 2), "rate": 8.0, "trips": 8}], to_offline=True)
    monkeypatch.undo()
    assert_frame_equal(read_store(FeatureStore(store.repo)), before)
    assert set(objects) < set(data_keys(store.layout))  # type: ignore[arg-type]  # the upload is left


def test_the_cli_names_unreachable_object_storage_in_one_line(make_repo, s3_root: str, monkeypatch) -> None:
    from typer.testing import CliRunner

    from featurestore.cli.main import app
    from tests.conftest import free_port

    repo, _ = new_repo(make_repo, s3_root)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    out = CliRunner().invoke(app, ["ingest", "--repo", str(repo)], env={"COLUMNS": "200"})
    assert out.exit_code == 1
    text = out.output + (out.stderr if out.stderr_bytes is not None else "")
    assert "object storage:" in text and "Traceback" not in text
