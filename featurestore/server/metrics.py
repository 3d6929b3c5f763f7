"""Prometheus metrics of one server app: requests, latency, feature statuses, store errors, freshness, gates."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "ServerMetrics",
    "MULTIPROC_ENV",
    "multiprocess_dir",
    "worker_started",
    "worker_stopped",
    "gate_snapshot",
    "freshness",
]

# With several uvicorn workers, prometheus-client keeps its values in files under this folder
# (``featurestore serve --workers N`` sets it to a fresh folder per run) and /metrics on any
# worker reports the sum over all of them: counters and histograms summed, gauges per their
# ``multiprocess_mode``.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_STATUSES = ("PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE")
_GATE_STATUSES = ("passed", "warned", "quarantined", "rejected")


def multiprocess_dir() -> Path | None:
    """The folder of the workers' metric files when this process is one of several workers, else None."""
    folder = os.environ.get(MULTIPROC_ENV)
    return Path(folder) if folder and Path(folder).is_dir() else None


def worker_started() -> None:
    """At a worker's start: forget the live gauges of workers that died without a clean exit (killed, or
    crashed and restarted by uvicorn), so their last values are not summed forever."""
    folder = multiprocess_dir()
    if folder is None:
        return
    from prometheus_client import multiprocess

    from featurestore.server.served_spool import process_alive

    for path in folder.glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), str(folder))


def worker_stopped() -> None:
    """At a worker's clean exit: its live gauges leave the sum (its counters stay: they count what it served)."""
    folder = multiprocess_dir()
    if folder is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), str(folder))


class ServerMetrics:
    """The counters and histograms of one app, in their own registry (several apps never collide).

    Children are resolved once per endpoint and status so a request costs a few dict
    lookups and lock-protected additions; freshness and gate results are computed when
    ``/metrics`` is scraped, from the online store and the report history.
    """

    def __init__(self, endpoints: Iterable[str]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "featurestore_http_request_duration_seconds",
            "Time to answer an HTTP request, by endpoint.",
            ["endpoint"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "featurestore_http_requests",
            "HTTP requests answered, by endpoint and status code.",
            ["endpoint", "code"],
            registry=self.registry,
        )
        self.statuses = Counter(
            "featurestore_feature_statuses",
            "Feature values served, by status (one per feature per entity).",
            ["status"],
            registry=self.registry,
        )
        self.store_errors = Counter(
            "featurestore_online_store_errors",
            "Online store failures seen while serving (unavailable: unreachable or timed out).",
            ["kind"],
            registry=self.registry,
        )
        self.endpoints = frozenset(endpoints)
        self._latency = {e: self.latency.labels(e) for e in (*self.endpoints, "other")}
        self._requests: dict[tuple[str, int], Any] = {}
        self._statuses = {s: self.statuses.labels(s) for s in _STATUSES}
        for kind in ("unavailable", "error"):
            self.store_errors.labels(kind)
        self._served_log: tuple[Any, Any, Any] | None = None

    def endpoint(self, path: str) -> str:
        """The endpoint label of a path (unknown paths share one label, so fuzzing cannot grow the series)."""
        return path if path in self.endpoints else "other"

    def observe(self, endpoint: str, code: int, seconds: float) -> None:
        """Record one answered request."""
        self._latency[endpoint].observe(seconds)
        child = self._requests.get((endpoint, code))
        if child is None:
            child = self._requests[(endpoint, code)] = self.requests.labels(endpoint, str(code))
        child.inc()

    def count_statuses(self, statuses: list[str]) -> None:
        """Count one column of statuses (fast path: all PRESENT)."""
        n = len(statuses)
        present = statuses.count("PRESENT")
        if present:
            self._statuses["PRESENT"].inc(present)
        if present != n:
            for status in ("NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE"):
                k = statuses.count(status)
                if k:
                    self._statuses[status].inc(k)

    def add_statuses(self, counts: dict[str, int]) -> None:
        """Count statuses already tallied (``{status: values}``), one addition per status."""
        for status, k in counts.items():
            self._statuses[status].inc(k)

    def served_log(self) -> tuple[Any, Any, Any]:
        """The served-feature log's metrics, registered on first use: rows dropped and rows spooled
        (counters) and the bytes waiting in memory (a gauge summed over live workers)."""
        from prometheus_client import Counter, Gauge

        if self._served_log is None:
            self._served_log = (
                Counter(
                    "featurestore_served_log_dropped_rows",
                    "Entity rows of sampled lookups not logged: the queue was full or a spool write failed.",
                    registry=self.registry,
                ),
                Counter(
                    "featurestore_served_log_spooled_rows",
                    "Entity rows appended to the served-log spool.",
                    registry=self.registry,
                ),
                Gauge(
                    "featurestore_served_log_queued_bytes",
                    "Stored-row bytes of logged lookups found waiting in memory at the writer's last pass.",
                    registry=self.registry,
                    multiprocess_mode="livesum",
                ),
            )
        return self._served_log

    def store_error(self, unavailable: bool) -> None:
        self.store_errors.labels("unavailable" if unavailable else "error").inc()

    def render(self, views: dict[str, Any]) -> tuple[bytes, str]:
        """The exposition text: this process's (or every worker's) counters plus the scrape-time view gauges.

        ``views`` maps a view name to ``{"freshness": seconds or None, "gate": report or None}``.
        """
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = self.registry
        folder = multiprocess_dir()
        if folder is not None:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=str(folder))
        views_registry = CollectorRegistry(auto_describe=False)
        views_registry.register(_ViewCollector(views))
        return generate_latest(registry) + generate_latest(views_registry), CONTENT_TYPE_LATEST


class _ViewCollector:
    """Per-view gauges computed at scrape time."""

    def __init__(self, views: dict[str, Any]) -> None:
        self.views = views

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        fresh = GaugeMetricFamily(
            "featurestore_view_freshness_seconds",
            "Age of the newest materialized (or pushed) row of the view's live version.",
            labels=["view"],
        )
        status = GaugeMetricFamily(
            "featurestore_gate_last_status",
            "Last gate result of the view (1 for its status, 0 for the others).",
            labels=["view", "path", "status"],
        )
        bad = GaugeMetricFamily(
            "featurestore_gate_last_bad_fraction", "Share of bad rows in the view's last gate run.", labels=["view"]
        )
        when = GaugeMetricFamily(
            "featurestore_gate_last_run_timestamp_seconds",
            "When the view's last gate ran (Unix time).",
            labels=["view"],
        )
        skew = GaugeMetricFamily(
            "featurestore_skew_psi",
            "PSI of served values against the training set or the offline profile (newest `featurestore skew`).",
            labels=["view", "feature", "target", "against"],
        )
        for view, info in sorted(self.views.items()):
            if info.get("freshness") is not None:
                fresh.add_metric([view], info["freshness"])
            report = info.get("gate")
            for (target, feature, against), value in sorted(((report or {}).get("skew") or {}).items()):
                skew.add_metric([view, feature, target, against], value)
            if report and "status" in report:
                for s in _GATE_STATUSES:
                    status.add_metric([view, str(report.get("path", "")), s], 1.0 if report.get("status") == s else 0.0)
                bad.add_metric([view], float(report.get("bad_fraction") or 0.0))
                if report.get("unix_time") is not None:
                    when.add_metric([view], report["unix_time"])
        yield from (fresh, status, bad, when, skew)


def gate_snapshot(offline_root: Path, views: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The newest gate report of each view (ingest, materialize or push), with its time as Unix seconds,
    and under ``"skew"`` the newest PSI per (service or view, feature, reference) from `featurestore skew`."""
    from featurestore.offline.frames import utc_datetime
    from featurestore.validation import list_reports

    wanted = set(views)
    out: dict[str, dict[str, Any]] = {}
    skew_seen: set[tuple[str, str]] = set()
    for report in list_reports(offline_root, limit=None):
        view = report.get("view")
        if view not in wanted or report.get("dry_run"):
            continue
        entry = out.setdefault(str(view), {})
        if report.get("path") == "skew":
            target = str(report.get("target"))
            if (target, str(view)) in skew_seen:
                continue
            skew_seen.add((target, str(view)))
            psi = entry.setdefault("skew", {})
            for item in (report.get("skew") or {}).get("features", []):
                for against in ("training", "profile"):
                    if item.get(f"psi_{against}") is not None:
                        psi[(target, item["feature"], against)] = float(item[f"psi_{against}"])
            continue
        if "status" in entry:
            continue
        entry.update({k: report.get(k) for k in ("path", "status", "bad_fraction")})
        try:
            stamp = utc_datetime(report.get("time"))
            entry["unix_time"] = stamp.timestamp() if stamp is not None else None
        except Exception:  # an unreadable time only loses that gauge
            entry["unix_time"] = None
    return out


def freshness(
    newest: dict[tuple[str, str], Any], versions: dict[str, str], now: float | None = None
) -> dict[str, float]:
    """Seconds since the newest row of each view's live version (``newest`` maps (view, version) to a datetime)."""
    now = time.time() if now is None else now
    out = {}
    for view, version in versions.items():
        stamp = newest.get((view, version))
        if stamp is not None:
            out[view] = max(0.0, now - stamp.timestamp())
    return out
