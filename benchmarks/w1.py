"""Workload W1: 100,000 drivers x 10 rows x 20 features, and a 1,000,000-row entity frame."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

__all__ = ["make_w1", "W1_DEFINITIONS", "entity_frame", "feature_frame", "FEATURES"]

START = datetime(2026, 1, 1, tzinfo=UTC)
FEATURES = [f"f{i:02d}" for i in range(20)]

W1_DEFINITIONS = '''
"""W1: the benchmark workload's single feature view."""
from datetime import timedelta

from featurestore import Entity, Feature, FeatureView, Float64, Int64, ParquetSource

driver = Entity("driver", join_keys=["driver_id"])

driver_stats = FeatureView(
    "driver_stats",
    entities=[driver],
    source=ParquetSource("data/driver_stats.parquet", timestamp="event_timestamp", created="created"),
    features=[Feature(f"f{i:02d}", Float64 if i % 2 == 0 else Int64) for i in range(20)],
    ttl=timedelta(days=7),
)
'''


def _micros(days: float) -> int:
    return int(days * 86_400 * 1_000_000)


def feature_frame(scale: float = 1.0, seed: int = 1) -> pl.DataFrame:
    """The driver_stats source rows: 100,000 x scale drivers, 10 rows each."""
    rng = np.random.default_rng(seed)
    drivers = int(100_000 * scale)
    n = drivers * 10
    t0 = int(START.timestamp() * 1_000_000)
    ts = t0 + rng.integers(0, _micros(30), n)
    cols: dict[str, object] = {
        "driver_id": np.repeat(np.arange(drivers, dtype=np.int64), 10),
        "event_timestamp": ts,
        "created": ts + 1_000_000,
    }
    for i, name in enumerate(FEATURES):
        cols[name] = rng.random(n) if i % 2 == 0 else rng.integers(0, 1000, n, dtype=np.int64)
    df = pl.DataFrame(cols)
    return df.with_columns(
        pl.col("event_timestamp").cast(pl.Datetime("us", "UTC")),
        pl.col("created").cast(pl.Datetime("us", "UTC")),
    )


def entity_frame(scale: float = 1.0, seed: int = 2) -> pl.DataFrame:
    """1,000,000 x scale entity rows: random drivers at random times in January 2026."""
    rng = np.random.default_rng(seed)
    drivers = int(100_000 * scale)
    n = int(1_000_000 * scale)
    t0 = int(START.timestamp() * 1_000_000)
    return pl.DataFrame(
        {
            "driver_id": rng.integers(0, drivers, n, dtype=np.int64),
            "event_timestamp": t0 + rng.integers(0, _micros(31), n),
        }
    ).with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC")))


def make_w1(root: Path, scale: float = 1.0, *, online: str | None = None, ingest: bool = True) -> Path:
    """Create a W1 feature repository under ``root`` (applied and, by default, ingested)."""
    from featurestore import FeatureStore

    root = Path(root)
    (root / "definitions").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    config = 'project = "w1"\n'
    if online:
        config += f'online = "{online}"\n'
    (root / "featurestore.toml").write_text(config)
    (root / "definitions" / "__init__.py").write_text("")
    (root / "definitions" / "w1.py").write_text(textwrap.dedent(W1_DEFINITIONS))
    feature_frame(scale).write_parquet(root / "data" / "driver_stats.parquet")
    entity_frame(scale).write_parquet(root / "data" / "entities.parquet")
    store = FeatureStore(root)
    store.apply()
    if ingest:
        store.ingest()
    return root
