"""Request and response shapes of the HTTP API, for the OpenAPI docs (requests are parsed with orjson)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "GetOnlineFeaturesRequest",
    "GetOnlineFeaturesResponse",
    "FeatureVector",
    "RowsRequest",
    "RowsResponse",
    "PushRequest",
    "WriteToOnlineStoreRequest",
    "MaterializeRequest",
    "MaterializeIncrementalRequest",
    "ErrorResponse",
    "request_body",
]


class GetOnlineFeaturesRequest(BaseModel):
    """Feast feature-server request: feature references or a service, and entity key columns."""

    features: list[str] | None = Field(None, examples=[["driver_stats:f00", "driver_stats:f01"]])
    feature_service: str | None = Field(None, examples=["driver_model"])
    entities: dict[str, list[Any]] = Field(..., examples=[{"driver_id": [1001, 1002]}])
    full_feature_names: bool = False


class FeatureVector(BaseModel):
    """One column of the response: a value, status and event time per entity."""

    values: list[Any]
    statuses: list[str] = Field(..., examples=[["PRESENT", "NOT_FOUND"]])
    event_timestamps: list[str]


class GetOnlineFeaturesResponse(BaseModel):
    """Feast feature-server response: entity key columns first, then one result per feature."""

    metadata: dict[str, list[str]] = Field(..., examples=[{"feature_names": ["driver_id", "f00"]}])
    results: list[FeatureVector]


class RowsRequest(BaseModel):
    """Native row lookup: every feature of one view for a list of entities."""

    view: str = Field(..., examples=["driver_stats"])
    entities: dict[str, list[Any]] = Field(..., examples=[{"driver_id": [1001, 1002]}])


class RowsResponse(BaseModel):
    """One row per entity (``[event_timestamp_us, feature values...]``, null when absent or too old)."""

    view: str
    version: str
    columns: list[str]
    statuses: list[str]
    rows: list[list[Any] | None]


class PushRequest(BaseModel):
    """Rows to write online (join keys, ``event_timestamp`` and every feature of the view)."""

    view: str | None = Field(None, examples=["driver_stats"])
    push_source_name: str | None = Field(None, description="Feast spelling of 'view'")
    rows: list[dict[str, Any]] | dict[str, list[Any]] | None = None
    df: dict[str, list[Any]] | None = Field(None, description="Feast spelling of 'rows' (columns)")
    to_offline: bool = False
    to_online: bool = True
    to: str | None = Field(
        None,
        description="Feast's PushMode, instead of to_online/to_offline: 'online' (default), 'offline' or "
        "'online_and_offline'",
    )


class WriteToOnlineStoreRequest(BaseModel):
    """Feast's remote online store write: rows of one view as columns, written online through its push gate."""

    feature_view_name: str = Field(..., examples=["driver_stats"])
    df: dict[str, list[Any]] = Field(
        ..., description="Columns: the join keys, event_timestamp, every feature and optionally created"
    )
    allow_registry_cache: bool = True
    transform_on_write: bool = True


class MaterializeRequest(BaseModel):
    """Feast's materialize: the latest offline row per entity with start_ts <= event time <= end_ts, online."""

    start_ts: str | None = Field(None, examples=["2026-01-01T00:00:00Z"], description="ISO 8601 (naive: UTC)")
    end_ts: str | None = Field(None, examples=["2026-01-02T00:00:00Z"], description="ISO 8601 (naive: UTC)")
    feature_views: list[str] | None = Field(None, description="Every online view when absent")
    disable_event_timestamp: bool = Field(False, description="From the beginning to now, ignoring start/end_ts")
    full_feature_names: bool = False


class MaterializeIncrementalRequest(BaseModel):
    """Feast's materialize-incremental: from each view's watermark (the previous run's end) to end_ts."""

    end_ts: str = Field(..., examples=["2026-01-02T00:00:00Z"], description="ISO 8601 (naive: UTC)")
    feature_views: list[str] | None = Field(None, description="Every online view when absent")
    full_feature_names: bool = False


class ErrorResponse(BaseModel):
    detail: Any


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body that the handler parses itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}
