"""kill -9 a materialization into the embedded SQLite store: the rerun equals a clean run's store."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from featurestore import FeatureStore
from tests.test_materialize import NOW, build, source_frame
from tests.test_materialize_faults import CHILD


def dump(db: Path) -> list[tuple[Any, ...]]:
    """Every table's rows, sorted: the whole content of the online store file."""
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return [(t, *row) for t in tables for row in sorted(con.execute(f'SELECT * FROM "{t}"'))]
    finally:
        con.close()


def test_kill_materialize_into_sqlite_then_rerun_equals_clean_run(make_repo: Any) -> None:
    root = build(make_repo, "sqlite:///data/online.db", df=source_frame(20_000, rows_each=2, seed=5))
    db = root / "data" / "online.db"
    end = NOW.isoformat()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}

    def child() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), end], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        return proc

    t0 = time.monotonic()
    first = child()
    first.wait(60)
    seconds = time.monotonic() - t0
    clean = dump(db)
    assert len(clean) > 20_000
    rng = random.Random(5)
    for trial in range(3):
        db.unlink()
        for extra in db.parent.glob("online.db-*"):
            extra.unlink()
        proc = child()
        time.sleep(rng.uniform(0, seconds))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        FeatureStore(root).materialize(end=end)
        assert dump(db) == clean, f"trial {trial}: the SQLite store differs from a clean run"
