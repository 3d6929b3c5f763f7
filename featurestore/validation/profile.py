"""Feature statistics (null fraction, range, quantiles, histograms, top values), baselines and PSI drift."""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl

__all__ = [
    "profile_frame",
    "histogram_like",
    "psi",
    "drift_scores",
    "baseline_path",
    "save_baseline",
    "load_baseline",
    "profile_view",
]

BINS = 20
TOP = 20
SAMPLE = 50_000
_EPS = 1e-4
_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def _json_scalar(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, datetime):
        return v.isoformat()
    return v


def _sample(df: pl.DataFrame, n: int = SAMPLE) -> pl.DataFrame:
    return df if df.height <= n else df.gather_every(df.height // n)


def profile_frame(
    df: pl.DataFrame, features: list[str], *, like: dict[str, Any] | None = None, sample: int | None = SAMPLE
) -> dict[str, Any]:
    """Statistics of each feature of ``df``; with ``like`` (a baseline), histograms use its bins.

    Counts, nulls, min, max and mean are exact; quantiles, histograms and top values are
    computed on a seeded sample of ``sample`` rows (all rows when None).
    """
    feats = [f for f in features if f in df.columns]
    if not feats:
        return {}
    numeric = [f for f in feats if df.schema[f].is_numeric()]
    part = df if sample is None else _sample(df, sample)
    exact: list[pl.Expr] = [pl.col(f).null_count().alias(f"{f}|nulls") for f in feats]
    for f in numeric:
        # NaN would win min/max; integer columns need no cleaning (the fast path).
        c = pl.col(f).fill_nan(None) if df.schema[f].is_float() else pl.col(f)
        exact += [c.min().alias(f"{f}|min"), c.max().alias(f"{f}|max"), c.mean().alias(f"{f}|mean")]
    row = df.select(exact).row(0, named=True)
    out: dict[str, Any] = {}
    for name in feats:
        stats: dict[str, Any] = {
            "dtype": str(df.schema[name]),
            "count": df.height,
            "null_fraction": (row[f"{name}|nulls"] / df.height) if df.height else 0.0,
        }
        base = (like or {}).get(name)
        if name in numeric:
            stats.update(
                min=_json_scalar(row[f"{name}|min"]),
                max=_json_scalar(row[f"{name}|max"]),
                mean=_json_scalar(row[f"{name}|mean"]),
            )
            values = _finite(part.get_column(name))
            # numpy sorts once per column; polars' quantile expressions sort once per quantile.
            qs = np.quantile(values, _QUANTILES) if values.size else [None] * len(_QUANTILES)
            stats["quantiles"] = {
                str(q): _json_scalar(None if v is None else float(v)) for q, v in zip(_QUANTILES, qs, strict=True)
            }
            stats["histogram"] = histogram_like(values, base.get("histogram") if base else None)
        elif df.schema[name] in (pl.String, pl.Boolean, pl.Categorical):
            stats["top"] = _top_values(part.get_column(name), base.get("top") if base else None)
        out[name] = stats
    return out


def _finite(s: pl.Series) -> np.ndarray:
    values = s.drop_nulls().cast(pl.Float64).to_numpy()
    return values[np.isfinite(values)]


def histogram_like(s: pl.Series | np.ndarray, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Counts of ``s`` in equal-width bins (the baseline's when given), plus under/overflow."""
    values = _finite(s) if isinstance(s, pl.Series) else s
    if base is not None:
        edges = np.asarray(base["edges"], dtype=float)
    elif values.size:
        lo, hi = float(values.min()), float(values.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, BINS + 1)
    else:
        return {"edges": [], "counts": [], "under": 0, "over": 0}
    counts, _ = np.histogram(values, bins=edges)
    return {
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "under": int((values < edges[0]).sum()),
        "over": int((values > edges[-1]).sum()),
    }


def _top_values(s: pl.Series, base: list[list[Any]] | None = None) -> list[list[Any]]:
    counts = s.drop_nulls().cast(pl.String).value_counts(sort=True, name="n")
    if base is not None:
        known = [str(v) for v, _ in base if v != "__other__"]
        lookup: dict[str, int] = dict(counts.rows())
        top: list[list[Any]] = [[v, int(lookup.get(v, 0))] for v in known]
        other = sum(int(n) for v, n in lookup.items() if v not in set(known))
        return top + [["__other__", other]]
    rows = counts.head(TOP).rows()
    other = int(counts.get_column("n").sum()) - sum(int(n) for _, n in rows)
    return [[v, int(n)] for v, n in rows] + [["__other__", other]]


def _distribution(stats: dict[str, Any]) -> dict[str, float] | None:
    if "histogram" in stats and stats["histogram"]["edges"]:
        h = stats["histogram"]
        bins = {"under": h["under"], "over": h["over"]} | {str(i): c for i, c in enumerate(h["counts"])}
    elif "top" in stats:
        bins = {str(v): n for v, n in stats["top"]}
    else:
        return None
    total = sum(bins.values())
    return {k: v / total for k, v in bins.items()} if total else None


def psi(expected: dict[str, float], actual: dict[str, float]) -> float:
    """Population stability index of two binned distributions (proportions)."""
    total = 0.0
    for k in expected.keys() | actual.keys():
        e = max(expected.get(k, 0.0), _EPS)
        a = max(actual.get(k, 0.0), _EPS)
        total += (a - e) * math.log(a / e)
    return total


def drift_scores(baseline: dict[str, Any], batch: dict[str, Any], features: list[str] | None) -> dict[str, float]:
    """PSI per feature of a batch profile (binned like the baseline) against the baseline."""
    scores: dict[str, float] = {}
    for name, base in baseline.get("features", {}).items():
        if features is not None and name not in features:
            continue
        if name not in batch:
            continue
        e, a = _distribution(base), _distribution(batch[name])
        if e is not None and a is not None:
            scores[name] = round(psi(e, a), 6)
    return scores


def baseline_path(offline_root: Path, view: str, version: str) -> Path:
    return Path(offline_root) / "_profiles" / view / f"v={version}" / "baseline.json"


def save_baseline(offline_root: Path, view: str, version: str, profile: dict[str, Any]) -> Path:
    """Store a view version's baseline profile (atomically: temp file + rename)."""
    path = baseline_path(offline_root, view, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(orjson.dumps(profile, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    tmp.replace(path)
    return path


def load_baseline(offline_root: Path, view: str, version: str) -> dict[str, Any] | None:
    path = baseline_path(offline_root, view, version)
    if not path.is_file():
        return None
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


def _read_columns(path: Path | str, columns: list[str]) -> pl.DataFrame:
    """Columns of one offline file, local or on object storage (``s3://``, through pyarrow)."""
    if not str(path).startswith("s3://"):
        return pl.read_parquet(path, columns=columns)
    import pyarrow.parquet as pq

    from featurestore.storage import open_storage

    storage = open_storage("s3://" + str(path).removeprefix("s3://").partition("/")[0])
    table = pq.read_table(storage.fs_path(str(path)), columns=columns, filesystem=storage.filesystem())
    return pl.DataFrame(pl.from_arrow(table))


def profile_view(
    offline_root: Path, spec: Any, files: list[Path] | list[str], *, training_set: Path | None = None, save: bool = True
) -> dict[str, Any]:
    """Profile a view version from its offline files (or a saved training set) as its drift baseline."""
    features = list(spec.features)
    if training_set is not None:
        df = pl.read_parquet(training_set) if training_set.suffix != ".csv" else pl.read_csv(training_set)
        renames = {f"{spec.name}__{f}": f for f in features if f"{spec.name}__{f}" in df.columns}
        df = df.rename(renames)
        source = str(training_set)
    else:
        df = pl.concat([_read_columns(f, features) for f in files]) if files else pl.DataFrame()
        source = "offline store"
    profile = {
        "view": spec.name,
        "version": spec.version,
        "source": source,
        "rows": df.height,
        "created": datetime.now(UTC).isoformat(),
        "features": profile_frame(df, features, sample=None),
    }
    if save:
        profile["path"] = str(save_baseline(offline_root, spec.name, spec.version, profile))
    return profile
