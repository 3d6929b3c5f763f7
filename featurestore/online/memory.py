"""The in-memory online store: the contract in its plainest form, for tests and embedding (one process)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime

from featurestore.dsl.names import check_identifier
from featurestore.errors import OnlineStoreError
from featurestore.online.base import OnlineStore, StoreSettings, check_batch
from featurestore.online.codec import event_time_us, newer
from featurestore.online.events import superseded
from featurestore.times import utc_datetime

__all__ = ["MemoryOnlineStore"]


class MemoryOnlineStore(OnlineStore):
    """Rows in a dict, guarded by one lock (``memory://``); nothing survives the process.

    The reference implementation of the contract (as httpx keeps a mock transport beside its
    real ones): every rule is one readable line here, and it passes the same contract suite.
    Stores opened with the same ``memory://name`` URL in one process share their data.
    """

    _shared: dict[str, dict[str, object]] = {}
    _shared_lock = threading.Lock()

    def __init__(self, name: str = "", project: str = "default") -> None:
        self.project = check_identifier(project, "project")
        with self._shared_lock:
            data = self._shared.setdefault(f"{name}\x00{project}", {})
        self._lock: threading.Lock = data.setdefault("lock", threading.Lock())  # type: ignore[assignment]
        self._rows: dict[tuple[str, str, str], tuple[bytes, int | None]] = data.setdefault("rows", {})  # type: ignore[assignment]
        self._meta: dict[tuple[str, str], str] = data.setdefault("meta", {})  # type: ignore[assignment]
        self._pushed: dict[tuple[str, str], set[str]] = data.setdefault("pushed", {})  # type: ignore[assignment]
        # (view, version, entity) -> ({identity: payload}, expire_at_ms)
        self._events: dict[tuple[str, str, str], tuple[dict[str, bytes], int]] = data.setdefault("events", {})  # type: ignore[assignment]

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> MemoryOnlineStore:
        return cls(settings.online_url.partition("://")[2], settings.project)

    def write_rows(
        self,
        view: str,
        version: str,
        keys: Sequence[str],
        rows: Sequence[bytes],
        expire_at_ms: Sequence[int] | None = None,
        *,
        pushed: bool = False,
    ) -> int:
        check_identifier(view, "feature view")
        check_batch(keys, rows, expire_at_ms)
        written = 0
        with self._lock:
            now = _now_ms()
            for i, (key, row) in enumerate(zip(keys, rows, strict=True)):
                if newer(row, self._live(view, version, key, now)):
                    self._rows[(view, version, key)] = (row, None if expire_at_ms is None else expire_at_ms[i])
                    written += 1
            if pushed:
                self._pushed.setdefault((view, version), set()).update(keys)
        return written

    def _live(self, view: str, version: str, key: str, now: int) -> bytes | None:
        found = self._rows.get((view, version, key))
        if found is None or (found[1] is not None and found[1] <= now):
            return None
        return found[0]

    def append_events(
        self,
        view: str,
        version: str,
        keys: Sequence[str],
        events: Sequence[Sequence[tuple[str, bytes]]],
        horizon_us: int,
        *,
        replace: bool = False,
    ) -> int:
        check_identifier(view, "feature view")
        if len(keys) != len(events):
            raise OnlineStoreError("append_events: keys and events must have the same length")
        added = 0
        with self._lock:
            now = _now_ms()
            for key, new in zip(keys, events, strict=True):
                found = self._events.get((view, version, key))
                state = {} if found is None or found[1] <= now else dict(found[0])
                if replace:  # the rebuilt events supersede their stored copies (events.superseded)
                    for ident in superseded(list(state.items()), new):
                        del state[ident]
                stamps = [event_time_us(p) for p in state.values()] + [event_time_us(p) for _, p in new]
                if not stamps:
                    self._events.pop((view, version, key), None)
                    continue
                cutoff = max(stamps) - horizon_us
                for ident, payload in new:
                    if ident not in state and event_time_us(payload) > cutoff:
                        state[ident] = payload
                        added += 1
                state = {i: p for i, p in state.items() if event_time_us(p) > cutoff}
                self._events[(view, version, key)] = (state, -(-(cutoff + 2 * horizon_us) // 1000))
        return added

    def read_events(self, view: str, version: str, keys: Sequence[str]) -> list[list[bytes]]:
        now = _now_ms()
        with self._lock:
            found = [self._events.get((view, version, k)) for k in keys]
        return [[] if f is None or f[1] <= now else list(f[0].values()) for f in found]

    def scan_events(self, view: str, version: str) -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
        now = _now_ms()
        with self._lock:
            found = [
                (k[2], list(v[0].items())) for k, v in self._events.items() if k[:2] == (view, version) and v[1] > now
            ]
        yield from found

    def read_rows(self, view: str, version: str, keys: Sequence[str]) -> list[bytes | None]:
        now = _now_ms()
        with self._lock:
            return [self._live(view, version, k, now) for k in keys]

    def pushed_keys(self, view: str, version: str) -> list[str]:
        with self._lock:
            return sorted(self._pushed.get((view, version), ()))

    def pointers(self, view: str) -> tuple[str | None, str | None]:
        with self._lock:
            current, pending = self._meta.get((view, "version")), self._meta.get((view, "pending"))
        return current, (None if pending == current else pending)

    def set_pending_version(self, view: str, version: str) -> None:
        with self._lock:
            self._meta[(check_identifier(view, "feature view"), "pending")] = version

    def current_version(self, view: str) -> str | None:
        with self._lock:
            return self._meta.get((view, "version"))

    def current_versions(self) -> dict[str, str]:
        with self._lock:
            return {view: value for (view, name), value in self._meta.items() if name == "version"}

    def set_current_version(self, view: str, version: str, *, if_absent: bool = False) -> None:
        with self._lock:
            key = (check_identifier(view, "feature view"), "version")
            if not (if_absent and key in self._meta):
                self._meta[key] = version

    def watermark(self, view: str, version: str) -> datetime | None:
        with self._lock:
            return utc_datetime(self._meta.get((view, f"watermark:{version}")))

    def set_watermark(self, view: str, version: str, when: datetime) -> None:
        stamp = utc_datetime(when)
        assert stamp is not None
        with self._lock:
            self._meta[(view, f"watermark:{version}")] = stamp.isoformat()

    def newest_events(self) -> dict[tuple[str, str], datetime]:
        with self._lock:
            items = [(view, name, value) for (view, name), value in self._meta.items() if name.startswith("newest:")]
        return {(view, name[len("newest:") :]): utc_datetime(value) for view, name, value in items}  # type: ignore[misc]

    def set_newest_event(self, view: str, version: str, when: datetime) -> None:
        stamp = utc_datetime(when)
        assert stamp is not None
        with self._lock:
            old = utc_datetime(self._meta.get((view, f"newest:{version}")))
            if old is None or old < stamp:
                self._meta[(view, f"newest:{version}")] = stamp.isoformat()

    def delete(self, view: str, version: str | None = None) -> int:
        with self._lock:
            doomed = [k for k in self._rows if k[0] == view and (version is None or k[1] == version)]
            for k in doomed:
                del self._rows[k]
            gone = [k for k in self._events if k[0] == view and (version is None or k[1] == version)]
            for k in gone:
                del self._events[k]
            for p in [p for p in self._pushed if p[0] == view and (version is None or p[1] == version)]:
                del self._pushed[p]
            names = None if version is None else {f"watermark:{version}", f"newest:{version}"}
            for m in [m for m in self._meta if m[0] == view and (names is None or m[1] in names)]:
                del self._meta[m]
        return len(doomed) + len(gone)

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"MemoryOnlineStore(project={self.project!r})"


def _now_ms() -> int:
    return int(time.time() * 1000)
