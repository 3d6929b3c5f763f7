"""Offline/online parity on the example repository: a training set and an online lookup give a model the same inputs."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from featurestore import FeatureStore

REPO = Path(__file__).resolve().parent.parent
# Entity times: late in a winter, a summer and an autumn day of the 2013 data, off the hour.
TIMES = [
    datetime(2013, 2, 14, 12, 30, tzinfo=UTC),
    datetime(2013, 6, 30, 17, 45, tzinfo=UTC),
    datetime(2013, 12, 1, 8, 10, tzinfo=UTC),
]
ENTITY_KEYS = ["origin", "dest", "carrier", "tailnum"]
# Weather readings replaced by NaN: the last reading before these entity times, at every airport.
GLITCHES = {"precip": TIMES[:2], "humid": TIMES[1:]}


class FrozenClock(datetime):
    """``datetime`` whose ``now()`` is the test's time ``t`` (materialize's ttl filter, lookups' ages)."""

    at: datetime = TIMES[0]

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return cls.at if tz is None else cls.at.astimezone(tz)


def same(offline: Any, online: Any) -> bool:
    """Equal values, where NaN equals NaN and null equals null, but NaN is not null."""
    if isinstance(offline, float) and isinstance(online, float) and math.isnan(offline) and math.isnan(online):
        return True
    return type(offline) is type(online) and offline == online or (offline is None and online is None)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    """The example repository with `make demo`'s data, plus weather readings of NaN, ingested."""
    root = tmp_path_factory.mktemp("example")
    shutil.copytree(REPO / "definitions", root / "definitions", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "featurestore.toml", root / "featurestore.toml")
    data = root / "data" / "nycflights13"
    subprocess.run([sys.executable, "-m", "definitions._prepare", str(data)], cwd=REPO, check=True, timeout=600)
    # A sensor that reports NaN.
    weather = pl.read_parquet(data / "weather.parquet")
    for column, times in GLITCHES.items():
        hours = pl.Series([t.replace(minute=0) for t in times]).cast(weather.schema["time_hour"])
        glitch = pl.col("time_hour").is_in(hours.implode())
        assert weather.filter(glitch).height == 3 * len(times)
        weather = weather.with_columns(pl.when(glitch).then(float("nan")).otherwise(pl.col(column)).alias(column))
    weather.write_parquet(data / "weather.parquet")
    store = FeatureStore(root)
    store.apply()
    store.ingest()
    return store


def entity_rows(store: FeatureStore, t: datetime, n: int = 300) -> pl.DataFrame:
    flights = pl.read_parquet(store.repo / "data" / "nycflights13" / "flights.parquet")
    sample = flights.filter(pl.col("tailnum").is_not_null()).sample(n, seed=t.month, shuffle=True)
    return sample.select(ENTITY_KEYS).with_columns(pl.lit(t).alias("event_timestamp"))


def test_training_set_values_equal_online_lookups_after_materializing_as_of_t(
    example: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For every feature of every view of the example, and sampled flights at three times t: the value a
    training set returns for the entity row at t equals what an online lookup answers for the same entity
    after ``materialize(end=t)``, nulls and NaN included.

    The 2013 data is older than every ttl against the real clock, so the online side runs with the clock
    at t (the only thing mocked: the codec's ``datetime`` and the SQLite store's expiry clock): materialize
    writes what is alive at t, the store expires rows as of t and the lookup judges ages at t, exactly as
    a server would have at t. A value too old for the view's ttl is null on
    both sides (training set: outside the window; online: OUTSIDE_MAX_AGE, value null).
    """
    monkeypatch.setattr("featurestore.online.codec.datetime", FrozenClock)
    monkeypatch.setattr("featurestore.online.sqlite._now_ms", lambda: int(FrozenClock.at.timestamp() * 1000))
    state = example.state()
    refs = [f"{name}:{feat}" for name, spec in sorted(state.views.items()) for feat in spec.features]
    compared: dict[str, int] = dict.fromkeys(refs, 0)
    nan_pairs = 0
    for t in TIMES:  # increasing: each materialize (from the start, to t) leaves the store as of t
        FrozenClock.at = t
        example.materialize(end=t)
        entities = entity_rows(example, t)
        training = example.get_training_set(entities, refs, full_feature_names=True)
        answer = example.get_online_features(
            refs, {k: entities[k].to_list() for k in ENTITY_KEYS}, full_feature_names=True
        ).to_dict()
        for ref in refs:
            name = ref.replace(":", "__")
            for i, (offline, online) in enumerate(zip(training[name].to_list(), answer[name], strict=True)):
                where = f"{ref} at {t} for {entities.row(i, named=True)}"
                assert same(offline, online), f"{where}: offline {offline!r}, online {online!r}"
                compared[ref] += offline is not None
                nan_pairs += isinstance(offline, float) and math.isnan(offline)
        for column, times in GLITCHES.items():
            # The reading at t is the injected NaN: compared above, null on both sides (NaN is null).
            assert t not in times or training.get_column(f"weather__{column}").is_null().all()
    # Every feature was compared on real values, and the injected NaN readings were among the rows.
    assert all(compared.values()), compared
    assert nan_pairs == 0
