"""Training sets: load an entity frame, join features point-in-time, save with a manifest, rebuild."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from featurestore.errors import TrainingSetError, one_line
from featurestore.offline.base import OfflineEngine
from featurestore.offline.commit import read_snapshot
from featurestore.offline.frames import DTypeMismatchError, check_timestamp_text
from featurestore.offline.layout import OfflineLayout
from featurestore.offline.manifest import file_sha256, read_manifest, verify_files, write_manifest
from featurestore.offline.pit import ViewRequest
from featurestore.registry.refs import ResolvedFeatures
from featurestore.registry.spec import ViewSpec
from featurestore.registry.store import RegistryState

__all__ = ["load_entity_frame", "build_training_set", "save_training_set", "rebuild_training_set"]


def load_entity_frame(entity: Any, timestamp_column: str | None = None, views: Sequence[ViewSpec] = ()) -> pl.DataFrame:
    """An entity frame from polars, pandas, pyarrow, or a Parquet/CSV path.

    With ``timestamp_column``, text in that column must be ISO timestamps: the error names
    the column and its first bad value. A CSV file's columns named as a String join key of
    one of ``views`` are read as text, as written (``02134`` keeps its zero).
    """
    df = _entity_frame(entity, views)
    if timestamp_column is not None and timestamp_column in df.columns:
        try:
            check_timestamp_text(df, timestamp_column)
        except DTypeMismatchError as exc:
            where = f"entity file {entity}" if isinstance(entity, str | Path) else "entity frame"
            raise TrainingSetError(f"{where}: {exc}") from None
    return df


def _text_keys(views: Sequence[ViewSpec]) -> dict[str, Any]:
    """Schema overrides for an entity CSV: the String join keys of ``views``, which inference would
    read as numbers. Other keys are inferred and cast to their dtype by the join (``pit.typed_key``)."""
    return {k: pl.String for spec in views for k, t in spec.join_keys.items() if t.name == "String"}


def _entity_frame(entity: Any, views: Sequence[ViewSpec]) -> pl.DataFrame:
    if isinstance(entity, pl.DataFrame):
        return entity
    if isinstance(entity, pl.LazyFrame):
        return entity.collect()
    if isinstance(entity, str | Path):
        path = Path(entity)
        if not path.is_file():
            raise TrainingSetError(f"entity file {path} does not exist")
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet", ".pq"):
            raise TrainingSetError(f"entity file {path}: use a .parquet or .csv file")
        try:
            if suffix == ".csv":
                return pl.read_csv(path, try_parse_dates=True, schema_overrides=_text_keys(views))
            return pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise TrainingSetError(f"entity file {path} cannot be read: {one_line(exc)}") from None
    mod = type(entity).__module__
    if mod.startswith("pandas"):
        return pl.from_pandas(entity)
    if mod.startswith("pyarrow"):
        out = pl.from_arrow(entity)
        if isinstance(out, pl.DataFrame):
            return out
    raise TrainingSetError(
        f"entity frame must be a polars/pandas DataFrame, a pyarrow Table or a file path, got {type(entity).__name__}"
    )


def _requests(layout: OfflineLayout, resolved: ResolvedFeatures) -> list[ViewRequest]:
    return [ViewRequest(spec, tuple(feats), tuple(layout.files(spec.name, spec.version))) for spec, feats in resolved]


def build_training_set(
    engine: OfflineEngine,
    layout: OfflineLayout,
    entity: pl.DataFrame,
    resolved: ResolvedFeatures,
    *,
    timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
) -> tuple[pl.DataFrame, list[ViewRequest]]:
    requests = _requests(layout, resolved)
    df = engine.point_in_time_join(
        entity, requests, timestamp_column=timestamp_column, full_feature_names=full_feature_names
    )
    return df, requests


def save_training_set(
    engine: OfflineEngine,
    layout: OfflineLayout,
    entity: pl.DataFrame,
    resolved: ResolvedFeatures,
    out: Path,
    *,
    entity_source: Path | None,
    references: list[str],
    timestamp_column: str,
    full_feature_names: bool,
) -> pl.DataFrame | None:
    """Build the training set into ``out`` (``engine.point_in_time_join_to``) and write its manifest.

    The frame when the engine built it in the driver, ``None`` when it wrote ``out`` from its
    workers (a folder of part files, each hashed into the manifest).
    """
    out = Path(out)
    requests = _requests(layout, resolved)
    df = engine.point_in_time_join_to(
        entity, requests, out, timestamp_column=timestamp_column, full_feature_names=full_feature_names
    )
    if entity_source is None:
        entity_source = out.with_name(out.name + ".entities.parquet")
        entity.write_parquet(entity_source)
    write_manifest(
        out,
        {
            "entities": {"path": str(Path(entity_source).resolve()), "sha256": file_sha256(Path(entity_source))},
            "entity_rows": entity.height,
            "features": references,
            "timestamp_column": timestamp_column,
            "full_feature_names": full_feature_names,
            # The manifest's keys are sorted; this keeps the join (and column) order.
            "view_order": [r.spec.name for r in requests],
            "views": {
                r.spec.name: {
                    "version": r.spec.version,
                    # ttl is not part of the version hash, so a later apply may change it.
                    "ttl_seconds": r.spec.raw.get("ttl_seconds"),
                    "features": list(r.features),
                    "files": [{"path": str(p), "sha256": file_sha256(p)} for p in r.files],
                }
                for r in requests
            },
            # One row per entity row, whichever engine wrote it.
            "output": _output_entry(out, entity.height),
        },
    )
    return df


def _output_entry(out: Path, rows: int) -> dict[str, Any]:
    """What was written at ``out``: its hash, or for a folder each part file's hash and one over them in order."""
    if not out.is_dir():
        return {"path": str(out.resolve()), "rows": rows, "sha256": file_sha256(out)}
    parts = sorted(p for p in out.iterdir() if p.suffix == ".parquet" and p.is_file())
    files = [{"path": str(p.resolve()), "sha256": file_sha256(p)} for p in parts]
    combined = hashlib.sha256("".join(f["sha256"] for f in files).encode()).hexdigest()
    return {"path": str(out.resolve()), "rows": rows, "sha256": combined, "files": files}


def rebuild_training_set(
    engine: OfflineEngine, state: RegistryState, manifest: Path, layout: OfflineLayout | None = None
) -> pl.DataFrame:
    """Rebuild exactly the training set a manifest describes (same entities, versions and files)."""
    data = read_manifest(manifest)
    snapshot = read_snapshot(layout, data["views"]) if layout is not None else contextlib.nullcontext()
    with snapshot:
        verify_files([data["entities"]], "entity")
        requests = []
        for name in data.get("view_order", list(data["views"])):
            info = data["views"][name]
            verify_files(info["files"], f"offline ({name})")
            spec = state.view(name, info["version"])
            if "ttl_seconds" in info:
                spec = ViewSpec({**spec.raw, "ttl_seconds": info["ttl_seconds"]})
            files = tuple(f["path"] if f["path"].startswith("s3://") else Path(f["path"]) for f in info["files"])
            requests.append(ViewRequest(spec, tuple(info["features"]), files))
        entity_path = Path(data["entities"]["path"])
        entity = load_entity_frame(entity_path, data["timestamp_column"], [r.spec for r in requests])
        return engine.point_in_time_join(
            entity,
            requests,
            timestamp_column=data["timestamp_column"],
            full_feature_names=data["full_feature_names"],
        )
