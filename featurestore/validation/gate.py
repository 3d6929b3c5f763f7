"""Running a gate: find failing rows with pandera, apply the policy and budget, quarantine, report."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from featurestore.dsl.checks import attached_schema
from featurestore.dsl.names import KEY_SEPARATOR
from featurestore.errors import GateRejectedError, offline_write_errors
from featurestore.validation.compile import (
    TS,
    UNIQUE_KEY,
    CompiledGate,
    compile_gate,
    pandera_name,
    strictly_increasing,
)
from featurestore.validation.profile import drift_scores, load_baseline, profile_frame
from featurestore.validation.quarantine import SourceRows, write_quarantine
from featurestore.validation.reports import append_report

__all__ = ["GateResult", "Failures", "find_failures", "run_gate", "new_run_id", "SAMPLE_SIZE"]

SAMPLE_SIZE = 20
_FAILURE_SCHEMA = {"row": pl.Int64, "check": pl.String, "column": pl.String, "value": pl.String}


def new_run_id() -> str:
    """Sortable and unique: UTC time to the microsecond plus 4 random hex digits."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(2)


@dataclass
class Failures:
    """What a batch failed: row failures (row, check, column, value) and dataframe-level failures."""

    rows: pl.DataFrame
    frame: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def bad_rows(self) -> pl.Series:
        rows = self.rows.get_column("row")
        return rows if rows.is_empty() else rows.unique().sort()  # a clean batch runs no query


@dataclass
class GateResult:
    """The outcome of one gate run; ``to_dict()`` is what the report history stores."""

    run_id: str
    view: str
    version: str
    path: str
    policy: str
    status: str  # passed | quarantined | warned | rejected
    time: str
    rows_checked: int
    rows_written: int
    rows_quarantined: int
    bad_fraction: float
    max_bad_fraction: float
    failures: dict[str, dict[str, Any]]
    frame_failures: list[dict[str, Any]]
    sample: list[dict[str, Any]]
    message: str = ""
    dry_run: bool = False
    quarantine_file: str | None = None
    drift: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None
    rows: list[dict[str, Any]] | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Rows with the same (keys, event time) as a later one, dropped before the gate (ingest).
    duplicates_dropped: int = 0

    def __repr__(self) -> str:
        return (
            f"GateResult(run_id={self.run_id!r}, view={self.view!r}, path={self.path!r}, status={self.status!r}, "
            f"checked={self.rows_checked}, written={self.rows_written}, quarantined={self.rows_quarantined})"
        )

    @property
    def rejected(self) -> bool:
        return self.status == "rejected"

    def to_dict(self) -> dict[str, Any]:
        # Shallow: the nested values are built for this result alone, and asdict's deep copy
        # was half the gate's time on a push of 100 rows (its per-row list).
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def public_dict(self) -> dict[str, Any]:
        """``to_dict()`` for an HTTP client: the quarantine is named by its run id, never a server path."""
        out = self.to_dict()
        out["quarantine_run"] = self.run_id if out.pop("quarantine_file") else None
        return out


def _empty_failures() -> pl.DataFrame:
    return pl.DataFrame(schema=_FAILURE_SCHEMA)


def _cases_to_failures(compiled: CompiledGate, cases: pl.DataFrame, prefix: str = "") -> Failures:
    cases = cases.with_columns(
        pl.col("check").map_elements(pandera_name, return_dtype=pl.String).alias("check"),
    )
    frame_mask = pl.col("index").is_null() | pl.col("check").map_elements(
        compiled.is_frame_check, return_dtype=pl.Boolean
    )
    frame = [
        {"check": prefix + c, "column": col, "value": v}
        for c, col, v in cases.filter(frame_mask)
        .unique(["check", "column"], maintain_order=True)
        .select("check", "column", "failure_case")
        .rows()
    ]
    rows = cases.filter(~frame_mask).select(
        pl.col("index").cast(pl.Int64).alias("row"),
        (pl.lit(prefix) + pl.col("check")).alias("check"),
        pl.col("column").cast(pl.String),
        pl.col("failure_case").cast(pl.String).alias("value"),
    )
    return Failures(rows, frame)


def _validate(schema: Any, df: pl.DataFrame) -> pl.DataFrame | None:
    import pandera.errors as pe

    try:
        schema.validate(df, lazy=True)
    except pe.SchemaErrors as exc:
        return exc.failure_cases
    return None


def _utc_literal(when: datetime) -> pl.Expr:
    # an integer cast to a datetime: pl.lit of an aware datetime builds a Series through a query (~0.2 ms)
    micros = (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return pl.lit(micros, dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))


def _clearly_passes(compiled: CompiledGate, df: pl.DataFrame, keys_unique: bool = False) -> bool:
    """Whether every check of the gate certainly passes on ``df`` (two polars passes instead of pandera's).

    The fast path of small batches (a push of 100 rows spends ~11 ms in pandera, ~0.5 ms here):
    the declared dtypes, every row check, the ``max_future`` bound and key uniqueness, combined
    into one expression, and the dataframe-level checks in a second one. Only a definite "all
    true" skips pandera; a null anywhere (a check on a null value), a dtype that differs or an
    expert schema go the full way, so the reported failures are always pandera's.
    """
    gate = compiled.gate
    if gate.schema_key is not None or df.height == 0:
        return False
    frame = [fc.valid() for fc in gate.checks]
    if gate.freshness is not None:
        frame.append(pl.col(TS).max() >= _utc_literal(datetime.now(UTC) - gate.freshness))
    try:
        if frame and not all(v is True for v in df.select(e.alias(f"__f{i}") for i, e in enumerate(frame)).row(0)):
            return False
    except pl.exceptions.PolarsError:  # a check that cannot run here: pandera reports it
        return False
    columns = compiled.schema.columns
    if any(name not in df.columns or df.schema[name] != column.dtype.type for name, column in columns.items()):
        return False
    valid: list[pl.Expr] = []
    for (column, _), check in compiled.row_checks.items():
        if column is not None and column != TS and hasattr(check, "valid"):
            valid.append(check.valid(column))
    # the uniqueness pandera checks (none for an aggregation view's events: two at one time both count)
    unique = (None, UNIQUE_KEY) in compiled.row_checks and not keys_unique
    if not valid:  # the time bound and uniqueness alone (most pushes): series operations, no polars query
        return _bound_and_unique(compiled, df, unique)
    if gate.max_future is not None:
        bound = datetime.now(UTC) + gate.max_future
        valid.append(pl.col(TS) <= _utc_literal(bound))
    if unique:
        valid.append(pl.struct([*compiled.keys, TS]).is_unique())
    try:
        verdict = df.select(pl.all_horizontal(valid).fill_null(False).all()).item()
    except pl.exceptions.PolarsError:
        return False
    return bool(verdict)


def _bound_and_unique(compiled: CompiledGate, df: pl.DataFrame, unique: bool) -> bool:
    """``_clearly_passes``' row verdict when its only row checks are ``max_future`` and key uniqueness."""
    times = df.get_column(TS)
    if compiled.gate.max_future is not None:
        try:
            if times.null_count() or times.max() > datetime.now(UTC) + compiled.gate.max_future:  # type: ignore[operator]
                return False
        except TypeError:  # not an aware datetime column: pandera says what is wrong
            return False
    if unique:
        return not pl.DataFrame([df.get_column(c) for c in [*compiled.keys, TS]]).is_duplicated().any()
    return True


def find_failures(compiled: CompiledGate, df: pl.DataFrame, keys_unique: bool = False) -> Failures:
    """Run the compiled pandera schema (and an attached expert schema) over ``df``; ``keys_unique``:
    the writer already keeps one row per keys and event time (key uniqueness is not checked again)."""
    if _clearly_passes(compiled, df, keys_unique):
        return Failures(_empty_failures())
    schema = compiled.schema
    if compiled.gate.unique_key and (keys_unique or strictly_increasing(df, [*compiled.keys, TS])):
        schema = compiled.schema_sorted
    cases = _validate(schema, df)
    result = Failures(_empty_failures()) if cases is None else _cases_to_failures(compiled, cases)
    key = compiled.gate.schema_key
    if key is not None:
        expert = attached_schema(key)
        if expert is None:
            result.notes.append(
                "the expert pandera schema is not loaded in this process (import the definitions); skipped"
            )
        else:
            expert = expert.to_schema() if hasattr(expert, "to_schema") else expert
            more = _validate(expert, df)
            if more is not None:
                extra = _cases_to_failures(compiled, more, prefix="schema:")
                result.rows = pl.concat([result.rows, extra.rows])
                result.frame += extra.frame
    return result


def _failure_counts(compiled: CompiledGate, f: Failures) -> dict[str, dict[str, Any]]:
    counts: dict[str, dict[str, Any]] = {}
    grouped = [] if f.rows.is_empty() else f.rows.group_by("check", "column").len().sort("check", "column").rows()
    for check, column, n in grouped:
        label = f"{column}: {check}" if column else check
        counts[label] = {"check": check, "column": column, "level": "row", "count": int(n)}
    for item in f.frame:
        label = f"{item['column']}: {item['check']}" if item.get("column") else item["check"]
        counts[label] = {"check": item["check"], "column": item.get("column"), "level": "frame", "count": 1}
    return counts


def _sample(df: pl.DataFrame, compiled: CompiledGate, f: Failures, n: int = SAMPLE_SIZE) -> list[dict[str, Any]]:
    # A few failures of every check, so a rare check is not hidden by a frequent one.
    if f.rows.is_empty():  # a clean batch (most pushes): no polars passes
        return []
    head = f.rows.sort("row").group_by("check", "column", maintain_order=True).head(max(1, n // 4)).head(n)
    ids = [*compiled.keys, "event_timestamp"]
    keys = [c for c in ids if c in df.columns]
    out = []
    for row, check, column, value in head.select("row", "check", "column", "value").rows():
        key = {k: _plain(df.get_column(k)[row]) for k in keys} if 0 <= row < df.height else {}
        out.append({"row": row, "check": check, "column": column, "value": value, "key": key})
    return out


def _unstorable(compiled: CompiledGate, df: pl.DataFrame) -> pl.Series:
    """Rows no store can hold, which even policy ``warn`` does not write: a null join key or event
    time, or a text key holding the key separator (``featurestore.offline.ingest.storable``)."""
    cols = [c for c in [*compiled.keys, TS] if c in df.columns]
    bad = [pl.col(c).is_null() for c in cols]
    bad += [pl.col(c).str.contains(KEY_SEPARATOR, literal=True) for c in cols if df.schema[c] == pl.String]
    if not bad:
        return pl.Series("row", [], dtype=pl.Int64)
    return df.select(pl.arg_where(pl.any_horizontal(bad).fill_null(False)).cast(pl.Int64).alias("row")).to_series()


def _plain(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


def _drift(
    compiled: CompiledGate, settings: Any, df: pl.DataFrame, batch: dict[str, Any] | None
) -> dict[str, Any] | None:
    conf = compiled.gate.drift
    if conf is None:
        return None
    baseline = load_baseline(settings.offline_root, compiled.view, compiled.version)
    if baseline is None:
        return {"status": "no baseline", "message": f"run `featurestore profile {compiled.view}` to store one"}
    scores = drift_scores(baseline, batch or {}, conf.features)
    drifted = sorted(k for k, v in scores.items() if v > conf.psi_threshold)
    return {
        "status": "drift" if drifted else "ok",
        "psi": scores,
        "threshold": conf.psi_threshold,
        "drifted": drifted,
        "fail": conf.fail,
        "baseline_rows": baseline.get("rows"),
    }


def _per_row(height: int, f: Failures) -> list[dict[str, Any]]:
    if f.rows.is_empty():
        return [{"row": i, "ok": True, "reasons": []} for i in range(height)]
    reasons: dict[int, list[dict[str, Any]]] = {}
    for row, check, column, value in f.rows.sort("row").rows():
        reasons.setdefault(row, []).append({"check": check, "column": column, "value": value})
    return [{"row": i, "ok": i not in reasons, "reasons": reasons.get(i, [])} for i in range(height)]


def _add_known(f: Failures, known: pl.DataFrame | None) -> None:
    """Merge failures found before the gate (values that could not be typed) into ``f``."""
    if known is None or known.height == 0:
        return
    f.rows = pl.concat([known.select(list(_FAILURE_SCHEMA)).cast(_FAILURE_SCHEMA), f.rows])  # type: ignore[arg-type]
    counts = known.group_by("column", "check", maintain_order=True).agg(pl.len(), pl.col("value").first())
    for column, check, n, value in counts.rows():
        f.notes.append(f"{check}: column {column!r} value {value!r} is not the declared dtype ({n:,} row(s))")


def run_gate(
    settings: Any,
    spec: Any,
    path: str,
    df: pl.DataFrame,
    *,
    dry_run: bool = False,
    known: pl.DataFrame | None = None,
    source: SourceRows | None = None,
    duplicates_dropped: int = 0,
    keys_unique: bool = False,
) -> tuple[pl.DataFrame, GateResult]:
    """Check ``df`` against the view version's gate and apply its policy.

    Returns the rows that may be written and the result; raises GateRejectedError
    (carrying the result) when the policy rejects the batch. Unless ``dry_run``,
    failing rows go to the quarantine and the report is appended to the history.
    ``known`` holds failures found while typing the rows (row, check, column, value);
    ``source`` the full source rows, which the quarantine keeps instead of ``df``'s;
    ``duplicates_dropped`` is reported as is; ``keys_unique``: ``df`` holds one row per keys and
    event time already (a push's ``one_row_per_time``), so that check is not run again.
    """
    t0 = time.perf_counter()
    compiled = compile_gate(spec)
    gate = compiled.gate
    run_id = new_run_id()
    f = find_failures(compiled, df, keys_unique)
    _add_known(f, known)
    batch_level = [i for i in f.frame if i["check"] in compiled.frame_checks]
    if path not in ("ingest", "validate") and batch_level:
        # Dataframe-level checks (row counts, null fractions, freshness) describe an ingest
        # batch; materialize (latest row per entity) and push (a few rows) re-check rows only.
        # A row check that could not run (pandera reports it without rows) still fails the batch.
        names = ", ".join(i["check"] for i in batch_level)
        f.notes.append(f"dataframe-level checks apply to ingest, not {path}: {names}")
        f.frame = [i for i in f.frame if i["check"] not in compiled.frame_checks]
    batch_profile = None
    drift = None
    if path in ("ingest", "validate") and df.height:
        baseline = load_baseline(settings.offline_root, compiled.view, compiled.version) if gate.drift else None
        batch_profile = profile_frame(df, compiled.features, like=(baseline or {}).get("features"))
        drift = _drift(compiled, settings, df, batch_profile)
        if drift and drift.get("fail") and drift.get("drifted"):
            for name in drift["drifted"]:
                f.frame.append(
                    {
                        "check": f"drift(psi>{gate.drift.psi_threshold if gate.drift else ''})",
                        "column": name,
                        "value": str(drift["psi"][name]),
                    }
                )
    bad = f.bad_rows
    n, n_bad = df.height, bad.len()
    fraction = n_bad / n if n else 0.0
    any_failure = bool(n_bad or f.frame)
    unstorable = None
    if gate.policy == "warn":
        status, out = ("warned" if any_failure else "passed"), df
        if n_bad:  # written anyway, but for rows no store can hold: those are set aside
            unstorable = _unstorable(compiled, df)
            if unstorable.len():
                out = df.filter(pl.int_range(pl.len(), dtype=pl.Int64).is_in(unstorable.implode()).not_())
    elif gate.policy == "fail":
        status, out = ("rejected" if any_failure else "passed"), df
    elif f.frame or fraction > gate.max_bad_fraction:
        status, out = "rejected", df
    elif n_bad:
        mask = pl.int_range(pl.len(), dtype=pl.Int64).is_in(bad.implode()).not_()
        status, out = "quarantined", df.filter(mask)
    else:
        status, out = "passed", df
    message = _message(compiled, status, n, n_bad, fraction, f, gate.policy, gate.max_bad_fraction, dry_run)
    qfile = None
    set_aside, n_aside, aside = status in ("quarantined", "rejected") and n_bad > 0, n_bad, f.rows
    if unstorable is not None and unstorable.len():
        set_aside, n_aside = True, unstorable.len()
        aside = f.rows.filter(pl.col("row").is_in(unstorable.implode()))
        message += f"; {n_aside:,} row(s) without a join key or event time quarantined"
    if set_aside and not dry_run:
        with offline_write_errors(f"{path} to {compiled.view!r}"):
            qfile = write_quarantine(settings.offline_root, compiled.view, run_id, path, df, aside, source)
    result = GateResult(
        run_id=run_id,
        view=compiled.view,
        version=compiled.version,
        path=path,
        policy=gate.policy,
        status=status,
        time=datetime.now(UTC).isoformat(),
        rows_checked=n,
        rows_written=0 if status == "rejected" else out.height,
        rows_quarantined=n_aside if set_aside else 0,
        bad_fraction=round(fraction, 6),
        max_bad_fraction=gate.max_bad_fraction,
        failures=_failure_counts(compiled, f),
        frame_failures=f.frame,
        sample=_sample(df, compiled, f),
        message=message,
        dry_run=dry_run,
        quarantine_file=None if qfile is None else str(qfile),
        drift=drift,
        profile=batch_profile,
        rows=_per_row(n, f) if path == "push" else None,
        notes=f.notes,
        duplicates_dropped=duplicates_dropped,
    )
    result.seconds = round(time.perf_counter() - t0, 4)
    if not dry_run:
        with offline_write_errors(f"{path} to {compiled.view!r}"):  # before this batch is written
            append_report(Path(settings.offline_root), result.to_dict())
    if status == "rejected":
        raise GateRejectedError(message, result)
    return out, result


def _message(
    compiled: CompiledGate,
    status: str,
    n: int,
    n_bad: int,
    fraction: float,
    f: Failures,
    policy: str,
    budget: float,
    dry_run: bool = False,
) -> str:
    where = f"feature view {compiled.view!r} (version {compiled.version})"
    frame = ", ".join(sorted({(i["column"] + ": " if i.get("column") else "") + i["check"] for i in f.frame}))
    if status == "passed":
        return f"{where}: all {n:,} rows passed"
    if status == "quarantined":
        return f"{where}: {n_bad:,} of {n:,} rows quarantined ({fraction:.2%}, budget {budget:.2%})"
    if status == "warned":
        batch = f"; batch checks failed: {frame}" if frame else ""
        return f"{where}: {n_bad:,} of {n:,} rows failed checks{batch} (policy warn: written anyway)"
    why = []
    if frame:
        why.append(f"dataframe-level checks failed: {frame}")
    if n_bad:
        over = f", over the budget {budget:.2%}" if policy == "quarantine" else ""
        why.append(f"{n_bad:,} of {n:,} rows failed ({fraction:.2%}{over})")
    return (
        f"{where}: batch rejected by policy {policy!r}, nothing written: "
        + "; ".join(why)
        # A dry run (validate) stored no report and no quarantine: point only at what exists.
        + ("" if dry_run else "; see `featurestore reports` and the quarantine folder")
    )
