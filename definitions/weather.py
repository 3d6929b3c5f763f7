"""Hourly weather at each NYC departure airport."""

from datetime import timedelta

from definitions.entities import airport
from featurestore import (
    Feature,
    FeatureView,
    Float64,
    Gate,
    ParquetSource,
    greater_than_or_equal_to,
    in_range,
    max_null_fraction,
    min_rows,
    not_null,
)

weather = FeatureView(
    "weather",
    entities=[airport],
    source=ParquetSource("data/nycflights13/weather.parquet", timestamp="time_hour"),
    features=[
        Feature("temp", Float64, description="Temperature (F)", checks=[not_null(), in_range(-40, 130)]),
        Feature("dewp", Float64, description="Dew point (F)", checks=[in_range(-60, 100)]),
        Feature("humid", Float64, description="Relative humidity (%)", checks=[in_range(0, 100)]),
        Feature("wind_dir", Float64, description="Wind direction (degrees)", checks=[in_range(0, 360)]),
        # The real data holds a 1,048 mph reading: quarantined by the range check.
        Feature("wind_speed", Float64, description="Wind speed (mph)", checks=[not_null(), in_range(0, 150)]),
        Feature("wind_gust", Float64, description="Gust speed (mph)", checks=[in_range(0, 200)]),
        Feature("precip", Float64, description="Precipitation (inches)", checks=[greater_than_or_equal_to(0)]),
        Feature("pressure", Float64, description="Sea level pressure (millibars)", checks=[in_range(900, 1100)]),
        Feature("visib", Float64, description="Visibility (miles)", checks=[in_range(0, 10)]),
    ],
    ttl=timedelta(hours=3),
    owner="data-platform@example.com",
    tags={"domain": "weather"},
    description="Hourly METAR observations; stale after 3 hours.",
    # Quarantine impossible readings; reject the batch if more than 1 % is bad,
    # if wind speed is missing too often, or if a batch is suspiciously small.
    gate=Gate("quarantine", max_bad_fraction=0.01, checks=[max_null_fraction("wind_speed", 0.01), min_rows(24)]),
)
