"""The online-store contract: latest pre-encoded rows per (view, version, entity key)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime

__all__ = ["OnlineStore"]


class OnlineStore(abc.ABC):
    """Where the latest row of each entity of each view version is kept for serving.

    A *row* is one entity's features, pre-encoded by :mod:`featurestore.online.codec`
    (``[event_ts_us, v1, v2, ...]`` as JSON bytes, in the order of the view version's
    features). An *entity key* is the join-key values encoded by ``codec.entity_key``.
    Stores only move bytes: they never decode a row. Configuration (URL, project,
    timeouts) goes into the constructor.

    Versions: rows are namespaced by view version, so a new version never mixes with
    the old one; readers follow a per-view *version pointer* that materialization
    switches once a new version is completely written.
    """

    project: str

    @abc.abstractmethod
    def write_rows(
        self,
        view: str,
        version: str,
        keys: Sequence[str],
        rows: Sequence[bytes],
        expire_at_ms: Sequence[int] | None = None,
    ) -> int:
        """Store ``rows[i]`` as the row of entity ``keys[i]`` in ``view``/``version``; return the count.

        Each row is replaced atomically (no reader sees a mix of two writes) and writing
        the same rows again changes nothing. ``expire_at_ms[i]`` (Unix milliseconds) makes
        the row disappear at that time; ``None`` keeps it forever.

        Example::

            store.write_rows("driver_stats", "3f2a9c0b1d2e", ["1001"], [b'[1767225600000000,0.5,7]'])
        """

    @abc.abstractmethod
    def read_rows(self, view: str, version: str, keys: Sequence[str]) -> list[bytes | None]:
        """The stored rows of ``keys`` in order, ``None`` where an entity has no (unexpired) row.

        One round trip whatever the number of keys.

        Example::

            store.read_rows("driver_stats", "3f2a9c0b1d2e", ["1001", "1002"])  # [b'[...]', None]
        """

    async def aread_rows(self, view: str, version: str, keys: Sequence[str]) -> list[bytes | None]:
        """``read_rows`` for the event loop (the server); stores with a native async client override it."""
        return self.read_rows(view, version, keys)

    @abc.abstractmethod
    def current_version(self, view: str) -> str | None:
        """The version readers should use for ``view`` (``None`` before the first materialization)."""

    @abc.abstractmethod
    def current_versions(self) -> dict[str, str]:
        """Every view's version pointer in one round trip: ``{view: version}``."""

    async def acurrent_versions(self) -> dict[str, str]:
        """``current_versions`` for the event loop."""
        return self.current_versions()

    @abc.abstractmethod
    def set_current_version(self, view: str, version: str) -> None:
        """Point readers of ``view`` at ``version`` (call once the version is completely written)."""

    @abc.abstractmethod
    def watermark(self, view: str, version: str) -> datetime | None:
        """The end of the last materialization window of ``view``/``version`` (UTC), if any."""

    @abc.abstractmethod
    def set_watermark(self, view: str, version: str, when: datetime) -> None:
        """Record that ``view``/``version`` is materialized up to ``when``."""

    @abc.abstractmethod
    def newest_events(self) -> dict[tuple[str, str], datetime]:
        """The newest event time written to each view version: ``{(view, version): UTC datetime}`` (freshness).

        Example::

            store.newest_events()  # {("driver_stats", "3f2a9c0b1d2e"): datetime(2026, 1, 1, tzinfo=UTC)}
        """

    async def anewest_events(self) -> dict[tuple[str, str], datetime]:
        """``newest_events`` for the event loop."""
        return self.newest_events()

    @abc.abstractmethod
    def set_newest_event(self, view: str, version: str, when: datetime) -> None:
        """Record that a row with event time ``when`` was written to ``view``/``version`` (keeps the latest)."""

    @abc.abstractmethod
    def delete(self, view: str, version: str | None = None) -> int:
        """Remove the rows of one version (or of every version and the pointer); return rows removed."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Return if the store answers, else raise ``StoreUnavailableError`` (used by ``/ready``)."""

    async def aping(self) -> None:
        """``ping`` for the event loop."""
        self.ping()

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and files (the store cannot be used afterwards)."""

    async def aclose(self) -> None:
        """Release the event-loop resources (the async client) and then everything else."""
        self.close()

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
