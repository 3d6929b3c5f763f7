"""The Parquet offline store: the engine contract, layout, atomic ingest, point-in-time joins and training sets."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "OfflineEngine",
    "ENGINES",
    "engine_from_settings",
    "IngestResult",
    "read_view",
    "write_view",
    "OfflineLayout",
    "ViewRequest",
    "point_in_time_join",
    "build_training_set",
    "load_entity_frame",
    "rebuild_training_set",
]

# Name -> module. Imported on first use: the online server needs only the layout, not polars and DuckDB.
_HOME = {
    "OfflineEngine": "base",
    "ENGINES": "base",
    "engine_from_settings": "base",
    "IngestResult": "ingest",
    "read_view": "ingest",
    "write_view": "ingest",
    "OfflineLayout": "layout",
    "ViewRequest": "pit",
    "point_in_time_join": "pit",
    "build_training_set": "training",
    "load_entity_frame": "training",
    "rebuild_training_set": "training",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'featurestore.offline' has no attribute {name!r}")
    return getattr(importlib.import_module(f"featurestore.offline.{home}"), name)
