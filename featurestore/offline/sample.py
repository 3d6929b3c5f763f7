"""Plan-time data check: run a view's source and transform on its first rows and check the declared columns."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import polars as pl

from featurestore.dsl.source import Source
from featurestore.dsl.types import DType, Timestamp
from featurestore.dsl.view import FeatureView
from featurestore.errors import DefinitionError
from featurestore.offline.base import OfflineEngine, TransformOutputError
from featurestore.offline.cast import cast_column
from featurestore.offline.frames import DTypeMismatchError, check_timestamp_text, coerce_column, to_utc
from featurestore.registry.spec import ViewSpec

__all__ = ["check_view_sample", "SKIP_HINT"]

# Named as the SDK keyword; the CLI shows it as --no-data-check.
SKIP_HINT = "data_check=False"


def check_view_sample(view: FeatureView, spec: ViewSpec, engine: OfflineEngine, rows: int) -> int:
    """Read the first ``rows`` source rows of ``view``, transform them and check them against ``spec``.

    Raises DefinitionError, naming the module and view, when the source file is missing, the
    transform raises or returns something other than a frame, a declared column is missing,
    the timestamp column is not a time, or a column's type cannot hold its declared dtype (text
    none of whose values reads as it, e.g. a name column given as ``timestamp=``). Returns the
    number of rows the transform produced. Values (a null, an out-of-range number, a CSV column's
    one ``abc`` among numbers) are not judged here: that is the gate's work at ingest.
    """

    def fail(message: str) -> DefinitionError:
        return DefinitionError(
            f"{message} (plan-time data check on the first {rows:,} source rows; pass {SKIP_HINT} to skip it)",
            module=view.module,
            obj=view.name,
        )

    _check_files(view.source, engine.repo, fail)
    df = _sample(view, engine, rows, fail)
    src = view.source
    keys, feats = spec.join_keys, spec.features
    needed = [*keys, src.timestamp, *feats] + ([src.created] if src.created else [])
    missing = [c for c in needed if c not in df.columns]
    if missing:
        kind = "transformed" if view.transform is not None else "source"
        raise fail(f"column(s) {missing} missing from the {kind} frame (it has {df.columns})")
    for name, keyword in [(src.timestamp, "timestamp="), (src.created, "created=")]:
        if name is None:
            continue
        try:
            to_utc(pl.col(name), df.schema[name])
            if not _some_value_reads(df, name, Timestamp):
                check_timestamp_text(df, name)
        except DTypeMismatchError as exc:
            why = str(exc) if df.schema[name] == pl.String else f"it holds {df.schema[name]}"
            raise fail(f"the source's {keyword} column {name!r} is not a time: {why}") from None
    try:
        for name, dtype in {**keys, **feats}.items():
            # A text column with no value at all (an empty CSV column) carries no type, as at ingest.
            untyped = df.schema[name] == pl.String and df.get_column(name).null_count() == df.height
            if not (untyped and dtype.name not in ("String", "Timestamp")):
                try:
                    coerce_column(name, df.schema[name], dtype)
                except DTypeMismatchError:
                    if not _some_value_reads(df, name, dtype):
                        raise
    except DTypeMismatchError as exc:
        raise fail(str(exc)) from None
    return df.height


def _some_value_reads(df: pl.DataFrame, name: str, dtype: DType) -> bool:
    """Whether ingest's row-by-row typing (``cast_column``) reads some value of column ``name`` as
    ``dtype``: then the column is the right one (a CSV column with one ``abc`` among numbers is read
    as text, a pandas integer column with a null as floats) and the values that do not read are
    failing rows for the gate at ingest, not a definition error."""
    cast = cast_column(name, df.schema[name], dtype)
    if cast.failed is None:
        return True
    col = pl.col(name)
    present = col.str.strip_chars().ne("") if df.schema[name] == pl.String else col.is_not_null()
    values, failed = df.select(present.sum().alias("values"), cast.failed.sum().alias("failed")).row(0)
    return bool(values) and failed < values


def _check_files(source: Source, repo: Path, fail: Any) -> None:
    path = getattr(source, "path", None)
    if not isinstance(path, str) or "://" in path:
        return  # a query or a remote store: reading it says whether it exists
    resolved = source.resolve(repo)  # type: ignore[attr-defined]
    if not glob.glob(resolved):
        raise fail(f"source file {path!r} does not exist (looked for {resolved})")


def _sample(view: FeatureView, engine: OfflineEngine, rows: int, fail: Any) -> pl.DataFrame:
    """The first ``rows`` rows of the source, through the transform, collected."""
    try:
        return engine.read(view, limit=rows).collect()
    except DefinitionError:
        raise
    except TransformOutputError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # user code and engines raise anything
        why = f"{type(exc).__name__}: {exc}"
        raise fail(f"reading the source or running the transform failed ({engine.name} engine): {why}") from None
