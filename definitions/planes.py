"""Static specifications of each aircraft."""

import polars as pl

from definitions.entities import plane
from featurestore import Feature, FeatureView, Int64, ParquetSource, String, greater_than, in_range, not_null


def plane_specs(planes: pl.LazyFrame) -> pl.LazyFrame:
    """Rename the manufacturing year so it cannot be mistaken for the flight's year."""
    return planes.rename({"year": "manufactured_year"}).with_columns(pl.col("manufactured_year").cast(pl.Int64))


planes = FeatureView(
    "planes",
    entities=[plane],
    source=ParquetSource("data/nycflights13/planes.parquet", timestamp="valid_from"),
    features=[
        Feature("manufactured_year", Int64, checks=[in_range(1900, 2014)]),
        Feature("engines", Int64, checks=[in_range(1, 8)]),
        Feature("seats", Int64, checks=[not_null(), greater_than(0)]),
        Feature("manufacturer", String),
        Feature("type", String),
    ],
    transform=plane_specs,
    tags={"domain": "fleet"},
)
