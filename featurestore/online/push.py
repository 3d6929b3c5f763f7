"""Push: rows from an application -> typed frame -> gate -> online store (and optionally offline)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from featurestore.dsl.types import DType, Timestamp
from featurestore.errors import RequestError
from featurestore.offline.frames import DTypeMismatchError, check_timestamp_text, coerce_column, to_utc
from featurestore.offline.layout import OfflineLayout
from featurestore.online.base import OnlineStore
from featurestore.online.codec import check_key_dtypes, encode_rows, row_timestamp_us
from featurestore.registry.spec import ViewSpec
from featurestore.validation import gate_for

__all__ = ["PushResult", "push_rows", "push_frame"]

TS = "event_timestamp"


@dataclass(frozen=True)
class PushResult:
    """What a push did: rows received, written online, skipped as older than the stored row."""

    view: str
    version: str
    rows_received: int
    rows_written: int
    rows_stale: int
    rows_expired: int
    offline_partitions: list[str] = field(default_factory=list)
    gate: Any = None

    def to_dict(self) -> dict[str, Any]:
        gate = self.gate.public_dict() if hasattr(self.gate, "public_dict") else None
        return {
            "view": self.view,
            "version": self.version,
            "rows_received": self.rows_received,
            "rows_written": self.rows_written,
            "rows_stale": self.rows_stale,
            "rows_expired": self.rows_expired,
            "offline_partitions": self.offline_partitions,
            "gate": gate,
        }


CREATED_COLUMNS = ("created", "created_timestamp")


def push_frame(spec: ViewSpec, rows: Any) -> pl.DataFrame:
    """Rows (a polars frame, ``{column: [values]}`` or ``[{column: value}, ...]``) typed as ``spec`` declares."""
    try:
        df = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows, infer_schema_length=None)
    except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
        raise RequestError(f"push to {spec.name!r}: rows are not a table: {exc}", 422) from None
    check_key_dtypes(spec.name, spec.join_keys)
    declared = {**spec.join_keys, **spec.features}
    missing = [c for c in [*spec.join_keys, TS, *spec.features] if c not in df.columns]
    # A creation-time column (as Feast push frames carry) is accepted and not stored.
    extra = [c for c in df.columns if c not in declared and c not in (TS, *CREATED_COLUMNS)]
    if missing or extra:
        raise RequestError(
            f"push to {spec.name!r}: columns must be the join keys, {TS!r} and every feature "
            f"(missing {missing}, unknown {extra})",
            422,
        )
    if df.height == 0:
        raise RequestError(f"push to {spec.name!r}: no rows", 422)

    def typed_column(name: str, dtype: DType) -> pl.Expr:
        actual = df.schema[name]
        if dtype == Timestamp and actual == pl.String:  # JSON carries times as ISO strings
            return to_utc(pl.col(name), actual).alias(name)
        return coerce_column(name, actual, dtype)

    try:
        for name in [TS, *(c for c, t in declared.items() if t == Timestamp)]:
            check_timestamp_text(df, name)  # names the first bad value, not a polars expression
        typed = df.select(typed_column(TS, Timestamp), *[typed_column(c, t) for c, t in declared.items()])
    except (DTypeMismatchError, pl.exceptions.PolarsError) as exc:
        raise RequestError(f"push to {spec.name!r}: {exc}", 422) from None
    if typed.select(pl.any_horizontal(pl.col([*spec.join_keys, TS]).is_null()).any()).item():
        raise RequestError(f"push to {spec.name!r}: join keys and {TS!r} may not be null", 422)
    return typed.select([*spec.join_keys, TS, *spec.features])


def push_rows(
    settings: Any,
    store: OnlineStore,
    spec: ViewSpec,
    rows: Any,
    *,
    to_offline: bool = False,
    layout: OfflineLayout | None = None,
) -> PushResult:
    """Write pushed rows online (the newest per entity, never replacing a newer stored row).

    The ``push`` gate runs first; when it rejects, ``GateRejectedError`` is raised and
    nothing is written. With ``to_offline`` the rows are also merged into the offline store.
    """
    df = push_frame(spec, rows)
    received = df.height
    df, gate_result = gate_for(settings, spec, "push")(df)
    keys = list(spec.join_keys)
    latest = df.sort(TS).unique(subset=keys, keep="last", maintain_order=True)
    encoded = encode_rows(latest, keys, list(spec.features), spec.ttl)
    stored = store.read_rows(spec.name, spec.version, encoded.keys)
    keep = [
        i for i, old in enumerate(stored) if old is None or row_timestamp_us(old) <= row_timestamp_us(encoded.rows[i])
    ]
    expire = None if encoded.expire_at_ms is None else [encoded.expire_at_ms[i] for i in keep]
    store.write_rows(spec.name, spec.version, [encoded.keys[i] for i in keep], [encoded.rows[i] for i in keep], expire)
    if keep:
        store.set_newest_event(spec.name, spec.version, df.get_column(TS).max())  # type: ignore[arg-type]
    if store.current_version(spec.name) is None:
        store.set_current_version(spec.name, spec.version)
    partitions: list[str] = []
    if to_offline:
        if layout is None:
            raise ValueError("push_rows(to_offline=True) needs the offline layout")
        partitions = merge_offline(layout, spec, df)
    return PushResult(
        view=spec.name,
        version=spec.version,
        rows_received=received,
        rows_written=len(keep),
        rows_stale=len(encoded) - len(keep),
        rows_expired=encoded.skipped_expired,
        offline_partitions=partitions,
        gate=gate_result,
    )


def merge_offline(layout: OfflineLayout, spec: ViewSpec, df: pl.DataFrame) -> list[str]:
    """Upsert rows into the offline store: the days they touch are rewritten with them merged in."""
    from featurestore.offline.ingest import write_view

    return write_view(layout, spec, df.sort(TS), upsert=True)
