"""Materialization and push: online values equal the offline point-in-time values, versions switch whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from featurestore import FeatureStore, GateRejectedError, RequestError
from featurestore.online.codec import encode_rows

NOW = datetime.now(UTC).replace(microsecond=0)
BASE = NOW - timedelta(days=3)

VIEWS = """
from datetime import timedelta
from featurestore import Entity, Feature, FeatureService, FeatureView, Float64, Int64, ParquetSource, String

driver = Entity("driver", join_keys=["driver_id"])
stats = FeatureView(
    "stats",
    entities=[driver],
    source=ParquetSource("data/stats.parquet"),
    features=[Feature("a", Float64), Feature("b", Int64), Feature("s", String)EXTRA],
    ttl=TTL,
)
svc = FeatureService("svc", features=[stats])
"""


def source_frame(n_entities: int = 40, rows_each: int = 5, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_entities * rows_each
    offsets = rng.choice(3 * 86_400, size=n, replace=False)  # distinct seconds: one row per (key, time)
    a = rng.random(n)
    return pl.DataFrame(
        {
            "driver_id": np.repeat(np.arange(n_entities), rows_each),
            "event_timestamp": [BASE + timedelta(seconds=int(s)) for s in offsets],
            "a": [None if i % 7 == 0 else float(v) for i, v in enumerate(a)],
            "b": rng.integers(0, 1000, n),
            "s": [f"s{i}" for i in range(n)],
        }
    )


def build(make_repo: Any, online: str, *, ttl: str = "None", extra: str = "", df: pl.DataFrame | None = None) -> Path:
    views = VIEWS.replace("TTL", ttl).replace("EXTRA", extra)
    root = make_repo({"views.py": views}, config=f'project = "mat"\nonline = "{online}"\n')
    (root / "data").mkdir(exist_ok=True)
    (df if df is not None else source_frame()).write_parquet(root / "data" / "stats.parquet")
    store = FeatureStore(root)
    store.apply()
    store.ingest()
    return root


@pytest.fixture(params=["sqlite", "redis"])
def online_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite:///data/online.db"
    server = request.getfixturevalue("redis_server")
    import redis

    redis.Redis.from_url(server.url).flushdb()
    return str(server.url)


def point_in_time(df: pl.DataFrame, at: datetime, start: datetime | None = None) -> dict[int, dict[str, Any]]:
    """Brute-force reference: each entity's latest row with start <= event time <= at."""
    window = df.filter(pl.col("event_timestamp") <= at)
    if start is not None:
        window = window.filter(pl.col("event_timestamp") >= start)
    latest = window.sort("event_timestamp").group_by("driver_id").last()
    return {r["driver_id"]: r for r in latest.iter_rows(named=True)}


def test_online_values_equal_point_in_time_values(make_repo: Any, online_url: str) -> None:
    df = source_frame()
    root = build(make_repo, online_url, df=df)
    store = FeatureStore(root)
    end = BASE + timedelta(days=1, hours=12)
    (result,) = store.materialize(end=end)
    expected = point_in_time(df, end)
    assert result.rows_written == len(expected) and result.switched
    ids = list(range(45))  # 40 known entities and 5 unknown ones
    got = store.get_online_features("svc", {"driver_id": ids})
    values, statuses = got.to_dict(), got.statuses()
    assert got.feature_names == ["driver_id", "a", "b", "s"]
    for i, d in enumerate(ids):
        ref = expected.get(d)
        if ref is None:
            assert statuses["a"][i] == statuses["b"][i] == "NOT_FOUND" and values["b"][i] is None
            continue
        assert values["a"][i] == ref["a"] and values["b"][i] == ref["b"] and values["s"][i] == ref["s"]
        assert statuses["a"][i] == ("NULL_VALUE" if ref["a"] is None else "PRESENT")
        stamp = got.event_timestamps()["b"][i]
        assert datetime.fromisoformat(stamp.replace("Z", "+00:00")) == ref["event_timestamp"]
    # the same values as the offline point-in-time join at the window end
    entity_df = pl.DataFrame({"driver_id": ids, "event_timestamp": [end] * len(ids)})
    training = store.get_training_set(entity_df, ["stats:a", "stats:b", "stats:s"]).sort("driver_id")
    assert training.get_column("b").to_list() == values["b"]
    assert training.get_column("s").to_list() == values["s"]


def test_rematerializing_is_idempotent(make_repo: Any, online_url: str) -> None:
    store = FeatureStore(build(make_repo, online_url))
    store.materialize()
    spec = store.state().view("stats")
    keys = [str(i) for i in range(40)]
    before = store.online_store().read_rows("stats", spec.version, keys)
    (again,) = store.materialize()
    assert not again.switched
    assert store.online_store().read_rows("stats", spec.version, keys) == before
    assert all(before)


def test_incremental_starts_at_the_watermark(make_repo: Any, online_url: str) -> None:
    df = source_frame()
    store = FeatureStore(build(make_repo, online_url, df=df))
    t1, t2 = BASE + timedelta(days=1), BASE + timedelta(days=2)
    (first,) = store.materialize_incremental(end=t1)
    assert first.start is None
    (second,) = store.materialize_incremental(end=t2)
    assert second.start == t1
    assert second.rows_written == len(point_in_time(df, t2, start=t1))
    expected = point_in_time(df, t2)
    got = store.get_online_features(["stats:b"], {"driver_id": sorted(expected)}).to_dict()
    assert got["b"] == [expected[d]["b"] for d in sorted(expected)]


def test_new_version_becomes_visible_only_when_complete(make_repo: Any, online_url: str, monkeypatch: Any) -> None:
    root = build(make_repo, online_url)
    store = FeatureStore(root)
    store.materialize()
    old = store.state().view("stats").version
    (root / "definitions" / "views.py").write_text(
        (root / "definitions" / "views.py")
        .read_text()
        .replace('Feature("s", String)', 'Feature("s", String), Feature("c", Int64)')
    )
    pl.read_parquet(root / "data" / "stats.parquet").with_columns(c=pl.lit(7)).write_parquet(
        root / "data" / "stats.parquet"
    )
    store = FeatureStore(root)
    store.apply()
    store.ingest()
    new = store.state().view("stats").version
    assert new != old
    online = store.online_store()
    seen: dict[str, Any] = {}
    switch = online.set_current_version

    def check_then_switch(view: str, version: str) -> None:
        # every new row is written, yet readers still get the old complete version
        seen["new_rows"] = online.read_rows("stats", new, [str(i) for i in range(40)])
        seen["served"] = store.get_online_features(["stats:b", "stats:c"], {"driver_id": [0, 1]}).statuses()
        switch(view, version)

    monkeypatch.setattr(online, "set_current_version", check_then_switch)
    (result,) = store.materialize()
    assert result.switched and all(seen["new_rows"])
    assert seen["served"]["b"] == ["PRESENT", "PRESENT"] and seen["served"]["c"] == ["NOT_FOUND", "NOT_FOUND"]
    after = store.get_online_features(["stats:c"], {"driver_id": [0, 1]})
    assert after.to_dict()["c"] == [7, 7] and online.current_version("stats") == new


def test_ttl_skips_old_rows_and_serves_outside_max_age(make_repo: Any, online_url: str, monkeypatch: Any) -> None:
    df = pl.DataFrame(
        {
            "driver_id": [1, 2],
            "event_timestamp": [NOW - timedelta(hours=2), NOW - timedelta(minutes=10)],
            "a": [1.0, 2.0],
            "b": [1, 2],
            "s": ["x", "y"],
        }
    )
    store = FeatureStore(build(make_repo, online_url, ttl="timedelta(hours=1)", df=df))
    (result,) = store.materialize()
    assert result.rows_written == 1 and result.rows_expired == 1
    version = store.state().view("stats").version
    assert store.online_store().read_rows("stats", version, ["1", "2"])[0] is None
    fresh = store.get_online_features(["stats:a"], {"driver_id": [1, 2]})
    assert fresh.statuses()["a"] == ["NOT_FOUND", "PRESENT"]
    import featurestore.serving.lookup as lookup

    later = int((NOW + timedelta(hours=1)).timestamp() * 1_000_000)
    monkeypatch.setattr(lookup, "now_us", lambda: later)
    stale = store.get_online_features(["stats:a"], {"driver_id": [2]})
    assert stale.statuses()["a"] == ["OUTSIDE_MAX_AGE"] and stale.to_dict()["a"] == [None]


def test_outside_max_age_then_not_found_on_the_real_clock(make_repo: Any, online_url: str) -> None:
    # A row is PRESENT for its ttl, OUTSIDE_MAX_AGE for one more ttl, then gone (NOT_FOUND). Each phase is
    # asserted only when the lookup finished inside it by the real clock; on a machine too loaded for that,
    # the scenario runs again with a longer ttl (timings are never asserted, only the statuses in each phase).
    for ttl_s in (1, 4, 16):
        seen = _statuses_through_one_ttl(make_repo, online_url, ttl_s)
        if seen is not None:
            assert seen == ["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"]
            return
    pytest.fail("no lookup finished inside its phase even with a 16 s ttl")


def _statuses_through_one_ttl(make_repo: Any, online_url: str, ttl_s: int) -> list[str] | None:
    import time

    event = datetime.now(UTC) - timedelta(milliseconds=200)
    ttl = timedelta(seconds=ttl_s)
    df = pl.DataFrame({"driver_id": [1], "event_timestamp": [event], "a": [1.0], "b": [1], "s": ["x"]})
    store = FeatureStore(build(make_repo, online_url, ttl=f"timedelta(seconds={ttl_s})", df=df))
    store.materialize()
    seen = []
    for start in (event, event + ttl, event + 2 * ttl):
        time.sleep(max(0.0, (start + timedelta(milliseconds=100) - datetime.now(UTC)).total_seconds()))
        answer = store.get_online_features(["stats:a"], {"driver_id": [1]})
        if datetime.now(UTC) >= start + ttl and start < event + 2 * ttl:
            return None  # the lookup may have run in the next phase
        status = answer.statuses()["a"][0]
        if status != "PRESENT":
            assert answer["a"] == [None]
        seen.append(status)
    return seen


def test_ttl_sets_the_redis_expiry(make_repo: Any, redis_server: Any) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    event = NOW - timedelta(minutes=10)
    df = pl.DataFrame({"driver_id": [1], "event_timestamp": [event], "a": [1.0], "b": [1], "s": ["x"]})
    store = FeatureStore(build(make_repo, redis_server.url, ttl="timedelta(hours=1)", df=df))
    store.materialize()
    version = store.state().view("stats").version
    expire_ms = client.pexpiretime(f"fs:mat:stats:{version}:1")
    # kept one more ttl so lookups can answer OUTSIDE_MAX_AGE before the key disappears
    assert expire_ms == int((event + timedelta(hours=2)).timestamp() * 1000)


def _rejecting_gate(*args: Any) -> Any:
    def gate(df: pl.DataFrame, **batch: Any) -> Any:
        raise GateRejectedError("rejected by test", {"bad": True})

    return gate


def test_nothing_is_written_when_the_gate_rejects(make_repo: Any, online_url: str, monkeypatch: Any) -> None:
    store = FeatureStore(build(make_repo, online_url))
    import featurestore.serving.materialize as materialize

    monkeypatch.setattr(materialize, "gate_for", _rejecting_gate)
    with pytest.raises(GateRejectedError):
        store.materialize()
    online = store.online_store()
    version = store.state().view("stats").version
    assert online.current_version("stats") is None and online.watermark("stats", version) is None
    assert online.read_rows("stats", version, [str(i) for i in range(40)]) == [None] * 40


def push_row(driver: int, when: datetime, b: int) -> dict[str, Any]:
    return {"driver_id": driver, "event_timestamp": when.isoformat(), "a": 0.5, "b": b, "s": "p"}


def test_push_writes_newer_rows_only(make_repo: Any, online_url: str, monkeypatch: Any) -> None:
    store = FeatureStore(build(make_repo, online_url))
    store.materialize()
    result = store.push("stats", [push_row(0, NOW, 111), push_row(99, NOW, 222), push_row(1, BASE, 333)])
    assert (result.rows_written, result.rows_stale) == (2, 1)
    got = store.get_online_features(["stats:b"], {"driver_id": [0, 99, 1]}).to_dict()["b"]
    assert got[:2] == [111, 222] and got[2] != 333
    import featurestore.serving.push as push

    monkeypatch.setattr(push, "gate_for", _rejecting_gate)
    with pytest.raises(GateRejectedError):
        store.push("stats", [push_row(5, NOW, 555)])
    assert store.get_online_features(["stats:b"], {"driver_id": [5]}).to_dict()["b"] != [555]


def test_push_to_offline_merges_into_the_offline_store(make_repo: Any) -> None:
    store = FeatureStore(build(make_repo, "sqlite:///data/online.db"))
    store.push("stats", [push_row(77, NOW, 7)], to_offline=True)
    spec = store.state().view("stats")
    files = store.layout.files("stats", spec.version)
    offline = pl.concat([pl.read_parquet(f) for f in files], how="diagonal")
    assert offline.height == 201 and offline.filter(pl.col("driver_id") == 77).get_column("b").to_list() == [7]


def served_b(store: FeatureStore, driver: int) -> list[Any]:
    return list(store.get_online_features(["stats:b"], {"driver_id": [driver]}).to_dict()["b"])


def offline_rows(store: FeatureStore, driver: int) -> pl.DataFrame:
    """Driver ``driver``'s rows in the offline store (files a push rewrote also hold their created time)."""
    files = store.layout.files("stats", store.state().view("stats").version)
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal").filter(pl.col("driver_id") == driver)


def test_pushes_to_offline_keep_the_greatest_created_as_online(make_repo: Any, online_url: str) -> None:
    store = FeatureStore(build(make_repo, online_url))
    store.materialize()
    t = NOW - timedelta(hours=1)

    def pushed(b: int, created: datetime | None = None) -> dict[str, Any]:
        return {**push_row(77, t, b), **({"created": created.isoformat()} if created else {})}

    store.push("stats", [pushed(1, NOW - timedelta(minutes=1))], to_offline=True)
    store.push("stats", [pushed(2, NOW - timedelta(minutes=30))], to_offline=True)  # older: loses, online too
    entity = pl.DataFrame({"driver_id": [77], "event_timestamp": [NOW]})
    training = store.get_training_set(entity, ["stats:b"])
    online = store.get_online_features(["stats:b"], {"driver_id": [77]}).to_dict()["b"]
    assert training["b"].to_list() == online == [1]
    stored = offline_rows(store, 77)
    assert stored.select("b", "created_timestamp").rows() == [(1, NOW - timedelta(minutes=1))]
    # A full tie keeps the stored row (online: only a greater created replaces); no created: received now.
    same = NOW - timedelta(seconds=10)
    for b in (3, 4):
        store.push("stats", [pushed(b, same)], to_offline=True)
    assert offline_rows(store, 77).get_column("b").to_list() == [3] and served_b(store, 77) == [3]
    store.push("stats", [pushed(6)], to_offline=True)
    store.materialize()
    assert offline_rows(store, 77).get_column("b").to_list() == [6]
    assert store.get_training_set(entity, ["stats:b"])["b"].to_list() == [6]
    assert served_b(store, 77) == [6]


def test_a_push_to_offline_replaces_the_ingested_row_of_its_time(make_repo: Any) -> None:
    store = FeatureStore(build(make_repo, "sqlite:///data/online.db"))
    ingested = offline_rows(store, 3).row(0, named=True)
    store.push("stats", [push_row(3, ingested["event_timestamp"], -1)], to_offline=True)
    rows = offline_rows(store, 3).filter(pl.col("event_timestamp") == ingested["event_timestamp"])
    assert rows.get_column("b").to_list() == [-1]  # an ingested row counts as created before any push
    store.ingest()  # re-ingesting rebuilds the range from the source and keeps the pushed row: one per time
    assert offline_rows(store, 3).height == 5
    rows = offline_rows(store, 3).filter(pl.col("event_timestamp") == ingested["event_timestamp"])
    assert rows.get_column("b").to_list() == [-1]


CREATED_VIEWS = """
from featurestore import Entity, Feature, FeatureView, Int64, ParquetSource
driver = Entity("driver", join_keys=["driver_id"])
stats = FeatureView("stats", entities=[driver], source=ParquetSource("data/stats.parquet", created="created"),
    features=[Feature("b", Int64)])
"""


def test_materialized_rows_keep_their_created_time_so_online_and_offline_pick_the_same_row(
    make_repo: Any, online_url: str
) -> None:
    """A push of the same event time created before the source's row loses on both sides (it won
    online, where materialized rows counted as created at 0, and lost offline)."""
    root = make_repo({"views.py": CREATED_VIEWS}, config=f'project = "cr"\nonline = "{online_url}"\n')
    (root / "data").mkdir()
    t = NOW - timedelta(hours=1)
    source = {
        "driver_id": [1, 2],
        "event_timestamp": [t, t],
        "b": [100, 200],
        "created": [t + timedelta(minutes=30)] * 2,
    }
    pl.DataFrame(source).write_parquet(root / "data" / "stats.parquet")
    store = FeatureStore(root)
    store.apply()
    store.ingest()
    store.materialize()
    earlier, later = (t + timedelta(minutes=m) for m in (10, 40))
    for driver, created in ((1, earlier), (2, later)):
        row = {"driver_id": driver, "event_timestamp": t.isoformat(), "b": -driver, "created": created.isoformat()}
        store.push("stats", [row], to_offline=True)
    entity = pl.DataFrame({"driver_id": [1, 2], "event_timestamp": [NOW, NOW]})
    training = store.get_training_set(entity, ["stats:b"])["b"].to_list()
    online = store.get_online_features(["stats:b"], {"driver_id": [1, 2]}).to_dict()["b"]
    assert training == online == [100, -2]
    store.materialize()  # again: nothing changes
    assert store.get_online_features(["stats:b"], {"driver_id": [1, 2]}).to_dict()["b"] == [100, -2]


def test_a_push_to_offline_only_goes_through_the_gate_and_leaves_online_alone(make_repo: Any) -> None:
    store = FeatureStore(build(make_repo, "sqlite:///data/online.db"))
    store.materialize()
    reports = len(store.reports("stats"))
    result = store.push("stats", [push_row(88, NOW, 8)], to_offline=True, to_online=False)
    assert (result.rows_written, result.versions, result.gate.status) == (0, {}, "passed")
    assert result.offline_partitions and len(store.reports("stats")) == reports + 1
    assert offline_rows(store, 88).get_column("b").to_list() == [8] and served_b(store, 88) == [None]
    with pytest.raises(RequestError, match="'stats'.*both false"):
        store.push("stats", [push_row(89, NOW, 9)], to_online=False)


def test_push_rejects_bad_rows(make_repo: Any) -> None:
    store = FeatureStore(build(make_repo, "sqlite:///data/online.db"))
    with pytest.raises(RequestError, match="missing"):
        store.push("stats", [{"driver_id": 1, "event_timestamp": NOW.isoformat()}])
    with pytest.raises(GateRejectedError, match="1 of 1 rows"):  # a value of the wrong type fails its row
        store.push("stats", [{**push_row(1, NOW, 1), "b": "not a number"}])


def test_push_from_a_csv_file_types_columns_as_declared(make_repo: Any, tmp_path: Path) -> None:
    store = FeatureStore(build(make_repo, "sqlite:///data/online.db"))
    rows = tmp_path / "rows.csv"
    rows.write_text(f"s,driver_id,event_timestamp,a,b\n007,90,{NOW.isoformat()},1,12\n2.50,91,{NOW.isoformat()},,3\n")
    result = store.push("stats", rows, to_offline=True)
    assert (result.rows_written, result.gate.status) == (2, "passed")
    got = store.get_online_features(["stats:s", "stats:a", "stats:b"], {"driver_id": [90, 91]}).to_dict()
    assert got == {"driver_id": [90, 91], "s": ["007", "2.50"], "a": [1.0, None], "b": [12, 3]}  # text stays text
    stored = offline_rows(store, 90)
    assert stored.select("s", "a", "b").rows() == [("007", 1.0, 12)] and stored.schema["s"] == pl.String


def test_encode_rows_layout() -> None:
    df = pl.DataFrame(
        {"k": [1, 2], "event_timestamp": [NOW, NOW - timedelta(days=2)], "x": [1.5, None]},
        schema_overrides={"event_timestamp": pl.Datetime("us", "UTC")},
    )
    enc = encode_rows(df, ["k"], ["x"], timedelta(days=1), now=NOW)
    ts = int(NOW.timestamp() * 1_000_000)
    assert enc.keys == ["1"] and enc.rows == [b"[%d,1.5,0]" % ts] and enc.skipped_expired == 1
    assert enc.expire_at_ms == [(ts + 2 * 86_400_000_000) // 1000]


def test_push_accepts_and_ignores_a_created_column(make_repo: Any) -> None:
    store = FeatureStore(build(make_repo, "sqlite:///data/online.db"))
    row = {"driver_id": 5, "event_timestamp": NOW.isoformat(), "a": 0.5, "b": 5, "s": "p", "created": NOW.isoformat()}
    assert store.push("stats", [row]).rows_written == 1
    assert store.get_online_features(["stats:b"], {"driver_id": [5]})["b"] == [5]


def test_several_views_materialize_in_one_call(make_repo: Any) -> None:
    """One DuckDB connection serves every view of a run (no result left open between them)."""
    root = build(make_repo, "sqlite:///data/online.db", extra="")
    views = root / "definitions" / "views.py"
    views.write_text(
        views.read_text().replace('stats = FeatureView(\n    "stats"', 'stats = FeatureView(\n    "stats"')
        + (
            "\nstats2 = FeatureView('stats2', entities=[driver], source=ParquetSource('data/stats.parquet'),"
            " features=[Feature('b', Int64)], ttl=None)\n"
        )
    )
    store = FeatureStore(root)
    store.apply()
    store.ingest()
    results = store.materialize()
    assert [r.view for r in results] == ["stats", "stats2"] and all(r.rows_written == 40 for r in results)
    assert [r.rows_read for r in results] == [200, 200]


def test_a_push_holding_one_entity_and_time_twice_keeps_one_row_as_ingest_does(make_repo: Any) -> None:
    """Every copy was quarantined under unique_key, so the push lost the row; now the greatest
    created wins (none given: received now), then the later row, and the others are counted."""
    store = FeatureStore(build(make_repo, "sqlite:///data/online.db"))
    store.materialize()
    t = NOW - timedelta(hours=1)
    early, late = (NOW - timedelta(minutes=m) for m in (30, 10))
    result = store.push(
        "stats",
        [
            {**push_row(91, t, 1), "created": late.isoformat()},
            {**push_row(91, t, 2), "created": early.isoformat()},
            {**push_row(92, t, 3)},
            {**push_row(92, t, 4)},  # no created on either: the later row
            {**push_row(93, t, 5), "b": "not a number"},  # a failing copy dropped with its failure
            {**push_row(93, t, 6)},
        ],
        to_offline=True,
    )
    assert result.gate.rows_quarantined == 0 and result.gate.duplicates_dropped == 3
    assert [served_b(store, d) for d in (91, 92, 93)] == [[1], [4], [6]]
    assert [offline_rows(store, d).get_column("b").to_list() for d in (91, 92, 93)] == [[1], [4], [6]]
