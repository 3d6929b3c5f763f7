"""The UI's overview counts offline rows per view version without opening footers while nothing changed."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pytest

from featurestore.offline.commit import Transaction
from featurestore.offline.layout import OfflineLayout
from featurestore.server.ui import views
from featurestore.server.ui.views import COUNTS_FILE, RowCounts


def _commit(layout: OfflineLayout, days: dict[str, int]) -> None:
    """A real offline write: stage each partition, then the commit record and the swap."""
    txn = Transaction(layout, "trips", "v1")
    for day, n in days.items():
        pl.DataFrame({"x": list(range(n))}).write_parquet(txn.stage_path(day))
    txn.commit()


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock past the settling time: the folders count as quiet since their last change."""
    real = time.time_ns
    monkeypatch.setattr(views.time, "time_ns", lambda: real() + 10 * views.SETTLE_NS)


def test_version_counts_are_cached_until_a_commit_and_survive_a_restart(tmp_path: Path, later: None) -> None:
    layout = OfflineLayout(tmp_path)
    _commit(layout, {"2026-01-01": 3, "2026-01-02": 4})
    counts = RowCounts()
    assert counts.version(layout, "trips", "v1") == (7, 2) and counts.footers_read == 2
    assert counts.version(layout, "trips", "v1") == (7, 2) and counts.footers_read == 2  # no footer, no listing
    assert (tmp_path / COUNTS_FILE).is_file()

    restarted = RowCounts()  # a new server process: the first overview reads the saved counts
    assert restarted.version(layout, "trips", "v1") == (7, 2) and restarted.footers_read == 0

    _commit(layout, {"2026-01-02": 10})  # replaces one partition in place: the version folder is unchanged
    assert restarted.version(layout, "trips", "v1") == (13, 2) and restarted.footers_read == 2
    _commit(layout, {"2026-01-03": 1})  # a new partition
    assert restarted.version(layout, "trips", "v1") == (14, 3)
    assert RowCounts().version(layout, "trips", "v1") == (14, 3)


def test_a_staged_write_is_counted_but_never_cached(tmp_path: Path, later: None) -> None:
    layout = OfflineLayout(tmp_path)
    _commit(layout, {"2026-01-01": 3})
    staged = Transaction(layout, "trips", "v1")
    pl.DataFrame({"x": [1, 2]}).write_parquet(staged.stage_path("2026-01-01"))
    counts = RowCounts()
    assert counts.version(layout, "trips", "v1") == (3, 1)
    assert not (tmp_path / COUNTS_FILE).exists()  # a swap may follow at any time
    staged.commit()
    assert counts.version(layout, "trips", "v1") == (2, 1)
    assert RowCounts().version(layout, "trips", "v1") == (2, 1)


def test_a_version_that_does_not_exist_or_a_broken_cache_file_counts_from_the_files(tmp_path: Path) -> None:
    layout = OfflineLayout(tmp_path)
    assert RowCounts().version(layout, "trips", "v1") == (0, 0)
    _commit(layout, {"2026-01-01": 3})
    (tmp_path / COUNTS_FILE).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / COUNTS_FILE).write_text("{not json")
    assert RowCounts().version(layout, "trips", "v1") == (3, 1)
