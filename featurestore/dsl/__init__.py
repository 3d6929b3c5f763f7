"""What users declare: entities, sources, features, views, services and checks. No I/O here."""

from featurestore.dsl.aggregation import Aggregation
from featurestore.dsl.checks import (
    Check,
    Drift,
    FrameCheck,
    Gate,
    expr,
    frame_expr,
    greater_than,
    greater_than_or_equal_to,
    in_range,
    isin,
    less_than,
    less_than_or_equal_to,
    matches,
    max_null_fraction,
    min_rows,
    not_in,
    not_null,
    str_length,
    unique,
)
from featurestore.dsl.entity import Entity
from featurestore.dsl.feature import Feature
from featurestore.dsl.service import FeatureService
from featurestore.dsl.source import CsvSource, ParquetSource, Source, SqlSource
from featurestore.dsl.types import Bool, DType, Float32, Float64, Int32, Int64, List, String, Timestamp
from featurestore.dsl.view import FeatureView, FeatureViewProjection

__all__ = [
    "Aggregation",
    "Entity",
    "Feature",
    "FeatureService",
    "CsvSource",
    "ParquetSource",
    "Source",
    "SqlSource",
    "Bool",
    "DType",
    "Float32",
    "Float64",
    "Int32",
    "Int64",
    "List",
    "String",
    "Timestamp",
    "FeatureView",
    "FeatureViewProjection",
    "Check",
    "FrameCheck",
    "Drift",
    "Gate",
    "expr",
    "frame_expr",
    "greater_than",
    "greater_than_or_equal_to",
    "in_range",
    "isin",
    "less_than",
    "less_than_or_equal_to",
    "matches",
    "max_null_fraction",
    "min_rows",
    "not_in",
    "not_null",
    "str_length",
    "unique",
]
