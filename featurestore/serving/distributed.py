"""Materialization written from the executors: each partition of the latest rows is gated and written where it is."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from featurestore.errors import GateRejectedError
from featurestore.offline.commit import read_snapshot
from featurestore.offline.layout import OfflineLayout
from featurestore.online.base import OnlineStore
from featurestore.registry.spec import ViewSpec
from featurestore.serving.versions import SpecResolver, finish_switch

__all__ = ["PartitionWrites", "write_from_executors", "materialize_from_executors"]

TS = "event_timestamp"


@dataclass(frozen=True)
class PartitionWrites:
    """What the executors wrote: rows scanned, encoded, written, expired, the newest event and the gates."""

    scanned: int
    encoded: int
    written: int
    expired: int
    newest_us: int | None
    gates: list[Any]

    @property
    def gate(self) -> Any:
        """One GateResult for the whole run: counts summed over the partitions, the worst status."""
        if not self.gates:
            return None
        from dataclasses import replace

        order = ["passed", "warned", "quarantined", "rejected"]
        first = self.gates[0]
        checked = sum(g.rows_checked for g in self.gates)
        quarantined = sum(g.rows_quarantined for g in self.gates)
        return replace(
            first,
            status=max((g.status for g in self.gates), key=order.index),
            rows_checked=checked,
            rows_written=sum(g.rows_written for g in self.gates),
            rows_quarantined=quarantined,
            bad_fraction=round(quarantined / checked, 6) if checked else 0.0,
            message=f"{first.message} (gate run on {len(self.gates)} partitions)",
        )


def _gate_partition(settings: Any, spec: ViewSpec, *, dry_run: bool) -> Any:
    """A function for ``map_partitions``: the materialize gate on one partition (a dry run only checks)."""

    def run(part: pl.DataFrame) -> dict[str, Any]:
        from featurestore.offline.spark import typed_rows
        from featurestore.validation.gate import run_gate

        rows = typed_rows(part, spec)
        try:
            kept, result = run_gate(settings, spec, "materialize", rows, dry_run=dry_run)
        except GateRejectedError as exc:
            return {"rejected": True, "message": str(exc), "gate": exc.result.to_dict()}  # type: ignore[attr-defined]
        out: dict[str, Any] = {"rejected": False, "gate": result.to_dict()}
        if not dry_run:
            out.update(_write(settings, spec, kept))
        return out

    return run


def _write(settings: Any, spec: ViewSpec, rows: pl.DataFrame) -> dict[str, Any]:
    """Encode and write one partition's gated rows to the online store opened here (newest row wins)."""
    from featurestore.online import online_store_from_settings
    from featurestore.online.codec import encode_rows, stored_created_us

    encoded = encode_rows(rows, list(spec.join_keys), list(spec.features), spec.ttl, created_us=stored_created_us(rows))
    store = online_store_from_settings(settings)
    try:
        written = store.write_rows(spec.name, spec.version, encoded.keys, encoded.rows, encoded.expire_at_ms)
    finally:
        store.close()
    newest = rows.get_column(TS).dt.epoch("us").max() if len(encoded) else None
    return {
        "encoded": len(encoded),
        "written": written,
        "expired": encoded.skipped_expired,
        "newest_us": None if newest is None else int(newest),  # type: ignore[arg-type]
    }


def write_from_executors(
    settings: Any,
    engine: Any,
    layout: OfflineLayout,
    spec: ViewSpec,
    start: datetime | None,
    end: datetime,
    before_write: Any = None,
) -> PartitionWrites:
    """The latest row per entity computed by the engine and written to the online store by its executors.

    The gate runs twice per partition: a dry run first, so that a rejecting gate raises
    ``GateRejectedError`` before any partition writes, then for real, each partition writing
    the rows its gate lets through (quarantine and report per partition). ``before_write``
    (marking a pending version) runs between the two.
    """
    from featurestore.offline.spark import map_partitions

    with read_snapshot(layout, [spec.name]):
        files = layout.files(spec.name, spec.version)
        if not files:
            if before_write is not None:
                before_write()
            return PartitionWrites(0, 0, 0, 0, None, [])
        latest, in_range = engine.latest_frame(spec, files, start, end)
        latest = latest.persist()
        try:
            scanned = int(in_range.count())
            checks = map_partitions(latest, _gate_partition(settings, spec, dry_run=True))
            rejected = [c for c in checks if c["rejected"]]
            if rejected:
                from featurestore.validation.gate import GateResult

                raise GateRejectedError(rejected[0]["message"], GateResult(**rejected[0]["gate"]))
            if before_write is not None:
                before_write()
            parts = map_partitions(latest, _gate_partition(settings, spec, dry_run=False))
        finally:
            latest.unpersist()
    from featurestore.validation.gate import GateResult

    newest = [p["newest_us"] for p in parts if p.get("newest_us") is not None]
    return PartitionWrites(
        scanned=scanned,
        encoded=sum(p.get("encoded", 0) for p in parts),
        written=sum(p.get("written", 0) for p in parts),
        expired=sum(p.get("expired", 0) for p in parts),
        newest_us=max(newest) if newest else None,
        gates=[GateResult(**p["gate"]) for p in parts],
    )


def materialize_from_executors(
    settings: Any,
    engine: Any,
    layout: OfflineLayout,
    store: OnlineStore,
    spec: ViewSpec,
    start: datetime | None,
    end: datetime,
    *,
    switching: bool,
    current: str | None,
    resolve: SpecResolver | None,
    began: float,
) -> Any:
    """``materialize_view``'s steps with the rows written by the executors (pointers and watermark here)."""
    from featurestore.serving.materialize import MaterializeResult

    def pending() -> None:
        store.set_pending_version(spec.name, spec.version)

    done = write_from_executors(settings, engine, layout, spec, start, end, pending if switching else None)
    if done.newest_us is not None:
        newest = datetime.fromtimestamp(done.newest_us / 1_000_000, tz=UTC)
        store.set_newest_event(spec.name, spec.version, newest)
    carried = finish_switch(store, spec, current, end, switching=switching, resolve=resolve)
    return MaterializeResult(
        view=spec.name,
        version=spec.version,
        start=start,
        end=end,
        rows_read=done.scanned,
        rows_written=done.written,
        rows_expired=done.expired,
        seconds=time.perf_counter() - began,
        switched=switching,
        gate=done.gate,
        rows_stale=done.encoded - done.written,
        rows_carried=carried,
    )
