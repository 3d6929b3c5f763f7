"""The Parquet offline store: layout, atomic ingest, point-in-time joins and training sets."""

from featurestore.offline.ingest import IngestResult, read_view, write_view
from featurestore.offline.layout import OfflineLayout
from featurestore.offline.pit import ViewRequest, point_in_time_join
from featurestore.offline.training import build_training_set, load_entity_frame, rebuild_training_set

__all__ = [
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
