"""Training/serving skew: served values against the training set of the same features and the offline profile."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from featurestore.config import Settings
from featurestore.errors import FeatureStoreError
from featurestore.offline.manifest import find_manifests, read_manifest
from featurestore.registry.store import RegistryState
from featurestore.server.served_log import served_dir, served_files, status_column, value_column
from featurestore.server.served_spool import convert_spool
from featurestore.validation.gate import new_run_id
from featurestore.validation.profile import drift_scores, load_baseline, profile_frame
from featurestore.validation.reports import append_report

__all__ = ["SkewError", "compute_skew", "served_targets", "SKEW_PATH", "DEFAULT_THRESHOLD"]

# The write path under which skew results join the gate report history.
SKEW_PATH = "skew"
DEFAULT_THRESHOLD = 0.25


class SkewError(FeatureStoreError):
    """Nothing to compare: no served log for the target, or an unknown target."""


def served_targets(offline_root: Path) -> list[str]:
    """The services and views with a served-feature log."""
    base = served_dir(offline_root)
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) if base.is_dir() else []


def _training_set(settings: Settings, target: str, views: dict[str, list[str]]) -> tuple[Path, dict[str, Any]] | None:
    """The newest saved training set built from ``target`` (a service) or holding every logged view's features."""
    best: tuple[str, Path, dict[str, Any]] | None = None
    for path in find_manifests(settings.repo, skip=(settings.offline_root,)):
        try:
            data = read_manifest(path)
        except FeatureStoreError:
            continue
        out = Path((data.get("output") or {}).get("path", ""))
        if not out.is_file():
            continue
        named = data.get("features") == [target]
        saved = data.get("views") or {}
        holds = all(set(feats) <= set(saved.get(view, {}).get("features", [])) for view, feats in views.items())
        if named or holds:
            key = ("1" if named else "0") + str(data.get("created_at"))
            if best is None or key > best[0]:
                best = (key, path, data)
    return None if best is None else (best[1], best[2])


def _psi(reference: pl.Series | None, served: pl.Series) -> float | None:
    """PSI of the served values against a reference sample, binned like the reference."""
    if reference is None or reference.drop_nulls().len() == 0 or served.drop_nulls().len() == 0:
        return None
    if reference.dtype.is_numeric() and not served.dtype.is_numeric():
        served = served.cast(pl.Float64, strict=False)
    base = profile_frame(pl.DataFrame({"x": reference}), ["x"], sample=None)
    batch = profile_frame(pl.DataFrame({"x": served}), ["x"], like=base, sample=None)
    return drift_scores({"features": base}, batch, None).get("x")


def _profile_psi(baseline: dict[str, Any] | None, feature: str, served: pl.Series) -> float | None:
    if baseline is None or feature not in (baseline.get("features") or {}) or served.drop_nulls().len() == 0:
        return None
    if (baseline["features"][feature].get("histogram") is not None) and not served.dtype.is_numeric():
        served = served.cast(pl.Float64, strict=False)
    batch = profile_frame(pl.DataFrame({feature: served}), [feature], like=baseline["features"], sample=None)
    return drift_scores(baseline, batch, [feature]).get(feature)


def _threshold(spec: Any, given: float | None) -> float | None:
    if given is not None:
        return given
    drift = ((spec.raw.get("gate") or {}) if spec is not None else {}).get("drift")
    return None if not drift else float(drift.get("psi_threshold", DEFAULT_THRESHOLD))


def compute_skew(
    settings: Settings,
    state: RegistryState,
    target: str | None = None,
    *,
    since: str | None = None,
    threshold: float | None = None,
    record: bool = True,
) -> list[dict[str, Any]]:
    """One skew report per (logged service or view, view): PSI per feature against the training set and the
    offline profile, shares of NOT_FOUND and OUTSIDE_MAX_AGE, null rates served vs trained.

    With a threshold (``threshold``, else the view's ``Drift(psi_threshold=...)``) a PSI above it is a
    failed check (status ``warned``). Unless ``record`` is false, each report joins the gate report history
    under the write path ``skew``.
    """
    root = settings.offline_root
    convert_spool(root)  # sealed spool files a server has not converted yet (none if its converter is busy)
    targets = [target] if target else served_targets(root)
    if target and not served_files(root, target):
        raise SkewError(f"no served-feature log for {target!r} under {served_dir(root)} (set log_sample_rate > 0)")
    reports = []
    for name in targets:
        files = served_files(root, name, since)
        if not files:
            continue
        served = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
        views = {
            view: [f for f in spec.features if value_column(view, f) in served.columns]
            for view, spec in state.views.items()
        }
        views = {v: f for v, f in views.items() if f}
        found = _training_set(settings, name, views)
        train = pl.read_parquet(found[1]["output"]["path"]) if found else None
        for view, feats in views.items():
            reports.append(_view_report(settings, state, name, view, feats, served, found, train, since, threshold))
    if record:
        for report in reports:
            append_report(root, report)
    return reports


def _view_report(
    settings: Settings,
    state: RegistryState,
    target: str,
    view: str,
    feats: list[str],
    served: pl.DataFrame,
    found: tuple[Path, dict[str, Any]] | None,
    train: pl.DataFrame | None,
    since: str | None,
    threshold: float | None,
) -> dict[str, Any]:
    spec = state.views.get(view)
    version = spec.version if spec is not None else None
    baseline = load_baseline(settings.offline_root, view, version) if version else None
    limit = _threshold(spec, threshold)
    full = bool(found and found[1].get("full_feature_names"))
    n = served.height
    rows: list[dict[str, Any]] = []
    failures: dict[str, dict[str, Any]] = {}
    for f in feats:
        values = served.get_column(value_column(view, f))
        statuses = served.get_column(status_column(view, f))
        column = f"{view}__{f}" if full else f
        trained = train.get_column(column) if train is not None and column in train.columns else None
        item: dict[str, Any] = {
            "feature": f,
            "psi_training": _psi(trained, values),
            "psi_profile": _profile_psi(baseline, f, values),
            "null_served": values.null_count() / n if n else None,
            "null_trained": (trained.null_count() / trained.len()) if trained is not None and trained.len() else None,
            "not_found": (statuses == "NOT_FOUND").sum() / n if n else None,
            "outside_max_age": (statuses == "OUTSIDE_MAX_AGE").sum() / n if n else None,
        }
        rows.append(item)
        score = item["psi_training"] if item["psi_training"] is not None else item["psi_profile"]
        if limit is not None and score is not None and score > limit:
            label = f"{f}: skew(psi>{limit})"
            failures[label] = {"check": f"skew(psi>{limit})", "column": f, "level": "frame", "count": 1}
    status = "warned" if failures else "passed"
    where = f"feature view {view!r} served as {target!r}"
    message = (
        f"{where}: PSI above {limit} for {', '.join(sorted(v['column'] for v in failures.values()))}"
        if failures
        else f"{where}: {n:,} served rows, no feature past the skew threshold"
        + ("" if limit is not None else " (no threshold: set Drift(psi_threshold=...) on the view or --threshold)")
    )
    return {
        "run_id": new_run_id(),
        "view": view,
        "version": version,
        "path": SKEW_PATH,
        "target": target,
        "policy": "warn",
        "status": status,
        "time": datetime.now(UTC).isoformat(),
        "rows_checked": n,
        "rows_written": 0,
        "rows_quarantined": 0,
        "bad_fraction": 0.0,
        "failures": failures,
        "message": message,
        "dry_run": False,
        "skew": {
            "served_rows": n,
            "since": since,
            "threshold": limit,
            "training_set": None if found is None else str(found[0]),
            "baseline": baseline is not None,
            "features": rows,
        },
    }
