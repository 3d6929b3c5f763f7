"""Polars transforms on Spark: run per join-key group in the executors when the view declares them key-local."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from featurestore._optional import require
from featurestore.errors import DefinitionError
from featurestore.offline.base import apply_transform, run_transform

if TYPE_CHECKING:
    from featurestore.dsl.view import FeatureView

__all__ = ["per_key_transform", "key_columns", "ship_module"]


def key_columns(view: FeatureView) -> list[str]:
    """The join keys a key-local polars transform is grouped by; ``DefinitionError`` saying why it cannot run.

    A polars function sees one frame and may relate any rows of it (a global rank, a join
    with another file, a sample), so Spark cannot split its input without being told which
    rows belong together: the view declares ``transform_key_local=True`` when its rows for
    one key value depend only on the source rows of that value.
    """
    name = _transform_name(view.transform)
    if not view.transform_key_local:
        raise DefinitionError(
            f"the spark engine cannot run the polars transform {name} distributed: it sees the whole source "
            "as one frame, and nothing says which rows it needs together. If its rows for one join-key value "
            "depend only on the source rows of that value, declare FeatureView(..., transform_key_local=True) "
            "(it then runs per key group in the executors); otherwise rewrite it as a SQL transform "
            '(Spark SQL over the table `source`) or use engine = "duckdb"',
            module=view.module,
            obj=view.name,
        )
    keys: list[str] = []
    for entity in view.entities:
        if isinstance(entity, str):
            raise DefinitionError(
                f"transform_key_local=True: the view names its entity {entity!r} by name, so the spark engine "
                "does not know the join keys to group the polars transform by; pass the Entity object",
                module=view.module,
                obj=view.name,
            )
        keys.extend(k for k in entity.join_keys if k not in keys)
    return keys


def per_key_transform(view: FeatureView, source: Any) -> Any:
    """``view``'s polars transform over the Spark DataFrame ``source``, one call per join-key group.

    The output's columns and types are the transform's over an empty frame of the source's
    types (computed in the driver, so a transform returning no frame fails there); each group
    runs in an executor through Arrow (``groupBy(keys).applyInArrow``) and is cast to them.

    Example::

        rows = per_key_transform(view, spark.read.parquet("data/trips.parquet"))  # a Spark DataFrame
    """
    from_arrow_schema = require("pyspark.sql.pandas.types", extra="spark", purpose='engine = "spark"').from_arrow_schema
    keys = key_columns(view)
    missing = [k for k in keys if k not in source.columns]
    if missing:
        raise DefinitionError(
            f"transform_key_local=True: the source has no column(s) {missing} to group the polars transform by "
            f"(source columns: {source.columns})",
            module=view.module,
            obj=view.name,
        )
    empty = pl.from_arrow(source.limit(0).toArrow())
    assert isinstance(empty, pl.DataFrame)
    out = apply_transform(view, empty.lazy()).collect()
    # Spark's Arrow types: string and list, not the large_string and large_list polars uses.
    schema = out.to_arrow(compat_level=pl.CompatLevel.oldest()).schema
    transform = view.transform
    assert callable(transform)
    ship_module(source.sparkSession, transform)

    def run(table: Any) -> Any:
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        result = run_transform(transform, frame.lazy()).collect()
        return result.select(schema.names).to_arrow(compat_level=pl.CompatLevel.oldest()).cast(schema)

    return source.groupBy(*[source[k] for k in keys]).applyInArrow(run, from_arrow_schema(schema))


def ship_module(spark: Any, fn: Callable[..., Any]) -> None:
    """Make ``fn``'s top-level package (the definitions package) importable in the executors.

    Spark sends a module-level function by reference, and the executors cannot import a
    definitions package that only the driver has on its path: the package is zipped (named by
    its content, so a changed package is a new file) and added with ``addPyFile`` (Spark
    Connect: ``addArtifacts(pyfile=True)``).
    """
    name = getattr(fn, "__module__", None) or ""
    top = sys.modules.get(name.partition(".")[0])
    origin = getattr(top, "__file__", None)
    if top is None or origin is None or top.__name__ in ("__main__", "featurestore", "polars", "pyspark"):
        return
    root = Path(origin).parent if Path(origin).name == "__init__.py" else Path(origin)
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts) if root.is_dir() else [root]
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root.parent)).encode() + b"\0" + path.read_bytes())
    archive = Path(tempfile.gettempdir()) / f"featurestore-{top.__name__}-{digest.hexdigest()[:16]}.zip"
    if (id(spark), archive.name) in _SHIPPED:
        return
    if not archive.exists():
        staged = archive.with_name(f"{archive.name}.{os.getpid()}.tmp")
        with zipfile.ZipFile(staged, "w") as zf:
            for path in files:
                zf.write(path, str(path.relative_to(root.parent)))
        staged.replace(archive)
    if type(spark).__module__.startswith("pyspark.sql.connect"):
        spark.addArtifacts(str(archive), pyfile=True)
    else:
        spark.sparkContext.addPyFile(str(archive))
    _SHIPPED.add((id(spark), archive.name))


# (session, archive) pairs already added in this process.
_SHIPPED: set[tuple[int, str]] = set()


def _transform_name(transform: Any) -> str:
    name = getattr(transform, "__qualname__", None) or repr(transform)
    return repr(name)
