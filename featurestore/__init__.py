"""featurestore: a fast, point-in-time-correct feature store with validation gates."""

from typing import TYPE_CHECKING, Any

from featurestore._version import __version__ as __version__
from featurestore.config import Settings, load_settings
from featurestore.dsl import (
    Aggregation,
    Bool,
    CsvSource,
    Drift,
    DType,
    Entity,
    Feature,
    FeatureService,
    FeatureView,
    Float32,
    Float64,
    Gate,
    Int32,
    Int64,
    List,
    ParquetSource,
    SqlSource,
    String,
    Timestamp,
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
from featurestore.errors import (
    BreakingChangeError,
    ConfigError,
    DefinitionError,
    FeatureStoreError,
    GateRejectedError,
    IngestError,
    OnlineStoreError,
    RegistryError,
    RequestError,
    StoreUnavailableError,
    TrainingSetError,
    ValidationError,
)

if TYPE_CHECKING:
    from featurestore.store import FeatureStore

__all__ = [
    "Aggregation",
    "Bool",
    "BreakingChangeError",
    "ConfigError",
    "CsvSource",
    "DType",
    "DefinitionError",
    "Entity",
    "Feature",
    "FeatureService",
    "FeatureStore",
    "FeatureStoreError",
    "FeatureView",
    "Float32",
    "Float64",
    "GateRejectedError",
    "IngestError",
    "Int32",
    "Int64",
    "List",
    "OnlineStoreError",
    "ParquetSource",
    "RegistryError",
    "RequestError",
    "Settings",
    "SqlSource",
    "StoreUnavailableError",
    "String",
    "Timestamp",
    "TrainingSetError",
    "ValidationError",
    "load_settings",
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


def __getattr__(name: str) -> Any:
    # FeatureStore pulls in polars, DuckDB and numpy: imported on first use, so `import featurestore`
    # (and the server, the CLI's help, a definitions module) start fast.
    if name == "FeatureStore":
        from featurestore.store import FeatureStore

        return FeatureStore
    raise AttributeError(f"module 'featurestore' has no attribute {name!r}")
