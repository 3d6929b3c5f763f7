"""Faults on the write paths: a push to both stores never leaves one half written, and says why it failed."""

from __future__ import annotations

import errno
import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient

from featurestore import FeatureStore
from featurestore.config import load_settings
from featurestore.errors import OfflineWriteError, StoreUnavailableError
from featurestore.offline import commit
from featurestore.server import create_app
from featurestore.validation import gate as gate_module
from tests.conftest import RedisServer, write_repo
from tests.test_materialize import build


def _row(driver: int, b: int) -> dict[str, Any]:
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    return {"driver_id": driver, "event_timestamp": when.isoformat(), "a": 0.5, "b": b, "s": "pushed"}


def _offline_b(root: Path, driver: int) -> list[int]:
    """The ``b`` values the offline store holds for ``driver`` (every version, every day)."""
    files = sorted((root / "data" / "offline" / "stats").glob("v=*/date=*/*.parquet"))
    frame = pl.concat([pl.read_parquet(f).select("driver_id", "b") for f in files], how="vertical_relaxed")
    return frame.filter(pl.col("driver_id") == driver).get_column("b").to_list()


def _online_b(store: FeatureStore, driver: int) -> Any:
    return store.get_online_features(["stats:b"], {"driver_id": [driver]}).to_dict()["b"][0]


def _disk_full(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device", "/srv/offline/stats/part-0.parquet")


def test_a_failed_offline_write_leaves_the_online_store_untouched(make_repo: Any, monkeypatch: Any) -> None:
    root = build(make_repo, "sqlite:///data/online.db")
    store = FeatureStore(root)
    store.materialize()
    before = _offline_b(root, 77)
    with monkeypatch.context() as m:  # the disk fills up (cannot be made real without mounting a filesystem)
        m.setattr(commit.Transaction, "stage_path", _disk_full)
        with pytest.raises(OfflineWriteError, match=r"push to 'stats'.*No space left on device.*nothing"):
            store.push("stats", [_row(77, 1)], to_offline=True)
    assert _online_b(store, 77) is None  # not written online either: nothing half-written
    assert _offline_b(root, 77) == before == []
    assert not any((root / "data" / "offline" / "_txn").rglob("*.parquet"))  # no staging left behind
    result = store.push("stats", [_row(77, 2)], to_offline=True)  # the retry, once there is room
    assert result.rows_written == 1 and result.offline_partitions
    assert _online_b(store, 77) == 2 and _offline_b(root, 77) == [2]


def test_a_failed_online_write_keeps_the_offline_rows_and_a_retry_converges(make_repo: Any, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)  # a private server: this test stops it
    redis.start()
    try:
        root = build(make_repo, redis.url)
        store = FeatureStore(root)
        store.materialize()
        redis.stop()
        row = _row(78, 5)  # the client's retry sends the same row (a new _row could fall a second later)
        with pytest.raises(StoreUnavailableError):
            store.push("stats", [row], to_offline=True)
        assert _offline_b(root, 78) == [5]  # the rows users trusted us with are kept where training sets read
        redis.start()  # an empty Redis (no persistence): materialize, then the client's retry
        store.materialize()
        assert _online_b(store, 78) == 5
        store.push("stats", [row], to_offline=True)
        assert _online_b(store, 78) == 5 and _offline_b(root, 78) == [5]  # one row, not two
    finally:
        redis.stop()


@pytest.fixture
def client(tmp_path: Path) -> Any:
    root = build(functools.partial(write_repo, tmp_path / "repo"), "sqlite:///data/online.db")
    FeatureStore(root).materialize()
    settings = load_settings(root, env={"FEATURESTORE_AUTH": "off"})
    with TestClient(create_app(settings)) as c:
        yield c, root


@pytest.mark.parametrize("to", ["online_and_offline", "offline"])
def test_http_push_on_a_full_offline_disk_is_a_503_naming_the_cause(client: Any, monkeypatch: Any, to: str) -> None:
    c, root = client
    monkeypatch.setattr(commit.Transaction, "stage_path", _disk_full)
    resp = c.post("/push", json={"view": "stats", "rows": [_row(79, 1)], "to": to})
    assert resp.status_code == 503
    detail = resp.json()["detail"]
    assert "No space left on device" in detail and "'stats'" in detail and "/srv/" not in detail
    monkeypatch.undo()
    assert c.post("/rows", json={"view": "stats", "entities": {"driver_id": [79]}}).json()["rows"] == [None]
    assert _offline_b(root, 79) == []


def test_http_push_whose_gate_report_cannot_be_written_is_a_503(client: Any, monkeypatch: Any) -> None:
    c, _ = client
    monkeypatch.setattr(gate_module, "append_report", _disk_full)
    resp = c.post("/push", json={"view": "stats", "rows": [_row(80, 1)]})
    assert resp.status_code == 503 and "No space left on device" in resp.json()["detail"]
    monkeypatch.undo()
    assert c.post("/rows", json={"view": "stats", "entities": {"driver_id": [80]}}).json()["rows"] == [None]
