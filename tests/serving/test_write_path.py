"""Fresh data is never overwritten by older data: materialize vs push, racing pushes, version switches, the future."""

from __future__ import annotations

import functools
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from featurestore import FeatureStore, GateRejectedError, RequestError
from featurestore.errors import InvalidRequestError
from featurestore.online.codec import KEY_SEPARATOR
from tests.test_materialize import build, online_url  # noqa: F401  (the sqlite/redis fixture)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def row(driver: int, when: datetime, b: int, a: float = 0.5, **extra: Any) -> dict[str, Any]:
    return {"driver_id": driver, "event_timestamp": when.isoformat(), "a": a, "b": b, "s": "p", **extra}


def one_entity_repo(make_repo: Any, online: str, *, b: int = 1, age: timedelta = timedelta(hours=1)) -> Path:
    """A repository whose offline store holds driver 1's latest row ``age`` ago with b=``b``."""
    when = now() - age
    df = pl.DataFrame(
        {"driver_id": [1, 1], "event_timestamp": [when - timedelta(hours=5), when], "a": [0.1, 0.2], "b": [0, b]},
        schema_overrides={"event_timestamp": pl.Datetime("us", "UTC")},
    ).with_columns(s=pl.lit("offline"))
    return build(make_repo, online, df=df)


def served_b(store: FeatureStore, driver: int = 1) -> Any:
    return store.get_online_features(["stats:b"], {"driver_id": [driver]}).to_dict()["b"][0]


def test_materialize_never_replaces_a_newer_pushed_row(make_repo: Any, online_url: str) -> None:  # noqa: F811
    store = FeatureStore(one_entity_repo(make_repo, online_url, b=1))
    store.push("stats", [row(1, now() - timedelta(minutes=1), 42)])
    (first,) = store.materialize()
    assert served_b(store) == 42
    assert (first.rows_written, first.rows_stale) == (0, 1)
    (again,) = store.materialize()  # re-running really changes nothing
    assert (again.rows_written, again.rows_stale) == (0, 1) and served_b(store) == 42
    (inc,) = store.materialize_incremental()
    assert inc.rows_written == 0 and served_b(store) == 42


def test_an_equal_event_time_is_decided_by_created(make_repo: Any, online_url: str) -> None:  # noqa: F811
    store = FeatureStore(one_entity_repo(make_repo, online_url))
    store.materialize()
    t = now() - timedelta(minutes=2)
    early, late = (t + timedelta(seconds=1)).isoformat(), (t + timedelta(seconds=2)).isoformat()
    assert store.push("stats", [row(1, t, 7, created=late)]).rows_written == 1
    assert store.push("stats", [row(1, t, 8, created=early)]).rows_stale == 1  # an older correction loses
    assert served_b(store) == 7
    assert store.push("stats", [row(1, t, 9)]).rows_written == 1  # no created: the time it was received wins
    assert served_b(store) == 9


def test_racing_pushes_keep_the_newest_row(make_repo: Any, online_url: str) -> None:  # noqa: F811
    store = FeatureStore(one_entity_repo(make_repo, online_url))
    store.materialize()
    base = now() - timedelta(minutes=4)
    for burst in range(4):
        start = threading.Barrier(16)

        def push(i: int, burst: int = burst, start: threading.Barrier = start) -> None:
            start.wait()
            store.push("stats", [row(1, base + timedelta(seconds=burst * 16 + i), burst * 100 + i)])

        threads = [threading.Thread(target=push, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert served_b(store) == burst * 100 + 15


def _add_feature(root: Path) -> None:
    views = root / "definitions" / "views.py"
    views.write_text(views.read_text().replace('Feature("s", String)', 'Feature("s", String), Feature("c", Int64)'))
    pl.read_parquet(root / "data" / "stats.parquet").with_columns(c=pl.lit(7)).write_parquet(
        root / "data" / "stats.parquet"
    )


def test_pushes_before_and_after_apply_survive_the_version_switch(make_repo: Any, online_url: str) -> None:  # noqa: F811
    root = one_entity_repo(make_repo, online_url)
    store = FeatureStore(root)
    store.materialize()
    old = store.state().view("stats").version
    store.push("stats", [row(1, now() - timedelta(minutes=3), 42), row(2, now() - timedelta(minutes=3), 5)])
    _add_feature(root)
    store = FeatureStore(root)
    store.apply()
    store.ingest()
    new = store.state().view("stats").version
    # applied but not materialized: readers still follow the old version, and a push is served at once
    pushed = store.push("stats", [row(2, now() - timedelta(minutes=1), 6, c=3)])
    assert pushed.version == old and served_b(store, 2) == 6
    (result,) = store.materialize()
    assert result.switched and store.online_store().current_version("stats") == new
    got = store.get_online_features(["stats:b", "stats:c"], {"driver_id": [1, 2]}).to_dict()
    assert got["b"] == [42, 6]  # both pushed rows are newer than the offline rows, and stay served
    assert got["c"] == [None, None]  # a pushed row is a whole row: the old version had no c
    assert result.rows_carried == 2


def test_a_push_during_the_switch_is_written_to_both_versions(make_repo: Any, online_url: str) -> None:  # noqa: F811
    """A push from a server whose registry still has the old version, landing while the new one is written."""
    root = one_entity_repo(make_repo, online_url)
    stale = FeatureStore(root)
    stale.materialize()
    stale_spec = stale.state().view("stats")
    _add_feature(root)
    store = FeatureStore(root)
    store.apply()
    store.ingest()
    online = store.online_store()
    write = online.write_rows
    results: list[Any] = []
    started: list[bool] = []

    def write_then_push(*args: Any, **kwargs: Any) -> int:
        n = write(*args, **kwargs)
        if not started and args[1] != stale_spec.version:  # the new version is written, not yet live
            started.append(True)
            from featurestore.serving.push import push_rows

            fresh = FeatureStore(root).state()  # what the stale server reads when it meets the new version
            pushed = [row(1, now() - timedelta(seconds=30), 77)]
            resolve = functools.partial(fresh.view, "stats")
            results.append(push_rows(stale.settings, online, stale_spec, pushed, resolve=resolve))
        return n

    online.write_rows = write_then_push  # type: ignore[method-assign]
    (result,) = store.materialize()
    online.write_rows = write  # type: ignore[method-assign]
    assert result.switched and set(results[0].versions) == {stale_spec.version, result.version}
    assert served_b(store) == 77


def test_rows_from_the_future_are_refused(make_repo: Any, online_url: str) -> None:  # noqa: F811
    store = FeatureStore(one_entity_repo(make_repo, online_url))
    store.materialize()
    with pytest.raises(GateRejectedError) as err:
        store.push("stats", [row(1, now() + timedelta(days=365), 99)])
    assert "max_future" in str(err.value.result.to_dict())
    assert served_b(store) == 1
    batch = [row(d, now() - timedelta(seconds=5), 3) for d in range(1, 41)] + [row(99, now() + timedelta(days=9), 4)]
    result = store.push("stats", batch)  # 1 bad row in 41: quarantined, the rest written
    assert result.rows_written == 40 and result.gate.rows_quarantined == 1
    assert served_b(store) == 3 and served_b(store, 99) is None
    store.push("stats", [row(1, now() + timedelta(minutes=2), 5)])  # within the 5-minute tolerance
    assert served_b(store) == 5


def test_max_future_can_be_widened_or_turned_off(make_repo: Any) -> None:
    root = one_entity_repo(make_repo, "sqlite:///data/online.db")
    views = root / "definitions" / "views.py"
    views.write_text(
        views.read_text()
        .replace("from featurestore import", "from featurestore import Gate,")
        .replace("    ttl=None,", "    ttl=None,\n    gate=Gate(max_future=None),")
    )
    store = FeatureStore(root)
    store.apply()
    store.materialize()
    assert store.push("stats", [row(1, now() + timedelta(days=365), 99)]).rows_written == 1


def test_ingest_quarantines_future_rows_with_a_reason(make_repo: Any) -> None:
    ahead = now() + timedelta(days=30)
    df = pl.DataFrame(
        {"driver_id": list(range(40)), "event_timestamp": [now() - timedelta(hours=1)] * 39 + [ahead]},
        schema_overrides={"event_timestamp": pl.Datetime("us", "UTC")},
    ).with_columns(a=pl.lit(0.5), b=pl.lit(1), s=pl.lit("x"))
    root = build(make_repo, "sqlite:///data/online.db", df=df)
    (report,) = FeatureStore(root).reports("stats", limit=1)
    assert report["rows_quarantined"] == 1 and "max_future" in str(report)
    offline = pl.read_parquet(root / "data" / "offline" / "stats" / "*" / "*" / "*.parquet")
    assert offline.height == 39 and offline.get_column("event_timestamp").max() < ahead


def test_a_key_with_the_separator_is_refused(make_repo: Any) -> None:
    root = make_repo(
        {
            "views.py": """
            from featurestore import Entity, Feature, FeatureView, Float64, ParquetSource, String
            route = Entity("route", join_keys={"origin": String, "dest": String})
            legs = FeatureView("legs", entities=[route], source=ParquetSource("data/legs.parquet"),
                               features=[Feature("d", Float64)])
            """
        }
    )
    (root / "data").mkdir()
    pl.DataFrame(
        {"origin": ["JFK"], "dest": ["LAX"], "event_timestamp": [now() - timedelta(hours=1)], "d": [1.0]}
    ).write_parquet(root / "data" / "legs.parquet")
    store = FeatureStore(root)
    store.apply()
    bad = {"origin": f"JFK{KEY_SEPARATOR}X", "dest": "LAX", "event_timestamp": now().isoformat(), "d": 2.0}
    with pytest.raises(RequestError, match="reserved character") as err:
        store.push("legs", [bad])
    assert isinstance(err.value, InvalidRequestError)  # answered 422 over HTTP
    assert store.online_store().current_version("legs") is None  # nothing was written
