"""What users declare: entities, sources, features, views, services and checks. No I/O here."""

from featurestore.dsl.entity import Entity
from featurestore.dsl.feature import Feature
from featurestore.dsl.service import FeatureService
from featurestore.dsl.source import CsvSource, ParquetSource, Source, SqlSource
from featurestore.dsl.types import Bool, DType, Float32, Float64, Int32, Int64, List, String, Timestamp
from featurestore.dsl.view import FeatureView, FeatureViewProjection

__all__ = [
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
]
