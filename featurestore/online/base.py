"""The online-store contract: latest pre-encoded rows per (view, version, entity key)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Protocol

from featurestore.errors import OnlineStoreError

__all__ = ["OnlineStore", "StoreSettings", "check_batch"]


def check_batch(keys: Sequence[str], rows: Sequence[bytes], expire_at_ms: Sequence[int] | None) -> None:
    """Refuse a ``write_rows`` batch whose parallel lists differ in length (before anything is written)."""
    if len(keys) != len(rows) or (expire_at_ms is not None and len(expire_at_ms) != len(keys)):
        raise OnlineStoreError("write_rows: keys, rows and expire_at_ms must have the same length")


class StoreSettings(Protocol):
    """What a store reads from the repository's settings (``featurestore.config.Settings`` has it)."""

    @property
    def online_url(self) -> str: ...

    @property
    def project(self) -> str: ...

    @property
    def online_timeout(self) -> float: ...


class OnlineStore(abc.ABC):
    """Where the latest row of each entity of each view version is kept for serving.

    A *row* is one entity's features, pre-encoded by :mod:`featurestore.online.codec`
    (``[event_ts_us, v1, ..., vN, created_us]`` as JSON bytes, in the order of the view
    version's features). An *entity key* is the join-key values encoded by
    ``serving.keys.entity_keys``. Stores never decode a row; they read its first and last numbers
    to order rows (``codec.newer``). Configuration (URL, project, timeouts) goes into the
    constructor.

    Newest wins: a stored row is only replaced by a row with a greater event time, or the
    same event time and a greater created time, compared and written atomically in the
    store, so concurrent writers and re-runs can never put an older row back.

    Versions: rows are namespaced by view version, so a new version never mixes with
    the old one; readers follow a per-view *version pointer* that materialization
    switches once a new version is completely written. While it writes one, it marks it
    *pending*, so that pushes write to both (see ``pointers``).
    """

    project: str

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: StoreSettings) -> OnlineStore:
        """The store ``settings.online_url`` names, for ``settings.project``, with its timeouts.

        Example::

            RedisOnlineStore.from_settings(load_settings("."))  # online = "redis://localhost:6379/0"
        """

    @abc.abstractmethod
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
        """Store ``rows[i]`` as the row of entity ``keys[i]`` unless the stored row is newer; return rows written.

        Newest wins (``codec.newer``), compared and written atomically per row in the store,
        never a round trip per row: no reader sees a mix of two writes, writing the same rows
        again changes nothing, and an older row never replaces a newer one. ``expire_at_ms[i]``
        (Unix milliseconds) makes the row disappear at that time; ``None`` keeps it forever.
        ``pushed`` also records the keys as pushed to this version (``pushed_keys``).

        Example::

            store.write_rows("driver_stats", "3f2a9c0b1d2e", ["1001"], [b'[1767225600000000,0.5,7,0]'])  # 1
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
        """Add ``events[i]`` (``(identity, payload)`` pairs) to the events of entity ``keys[i]``; return events added.

        The state of an aggregation view's entity is a set of events, each stored under its
        *identity* (``"i:<event id>"`` or a random ``"n:<hex>"``: an identity already stored is
        not added again, so a retried push with an event id counts once). A *payload* is JSON
        ``[event_ts_us, created_us, seq, v1, ..., vN]`` (``featurestore.serving.windows``); stores
        only read its first number. Per entity, atomically (concurrent appends lose nothing):
        add the new identities, then drop every event with ``event_ts_us <= newest - horizon_us``
        (``newest``: the greatest event time stored or added, so late events inside the longest
        window stay and older ones never enter), and make the state expire at Unix milliseconds
        ``ceil((newest + horizon_us) / 1000)``. With ``replace`` (materialize rebuilding the state
        from the offline events) the given events supersede their stored copies
        (``featurestore.online.events.superseded``: the same identity, or the same event up to
        its seq at or before the newest given one); other stored events (pushes the offline
        store lacks) stay. One round trip per batch.

        Example::

            store.append_events("txn_stats", "3f2a9c0b1d2e", ["1001"],
                                [[("n:9f1c", b'[1767225600000000,null,0,12.5]')]], 86_400_000_000)  # 1
        """
        raise OnlineStoreError(f"{type(self).__name__} does not support aggregation views (append_events)")

    def append_events_live(
        self,
        view: str,
        targets: Callable[[str, str | None], Sequence[tuple[str, int]]],
        keys: Sequence[str],
        events: Sequence[Sequence[tuple[str, bytes]]],
        newest: datetime,
    ) -> tuple[str, dict[str, int]] | None:
        """A push's ``append_events`` to every live version of ``view`` plus ``set_newest_event``, as one step.

        ``targets(current, pending)`` gives, for the view's version pointers, the versions that
        take these events and their ``horizon_us``. A store that can check the pointers and
        append atomically (Redis: one script call) does so, so the events land on exactly the
        versions live at that moment; it returns the current version and the events added per
        target. None means "not here": the store has no such step, the view has no current
        version yet, or the batch is too large for one call; the caller then follows the
        pointers itself (``serving.versions.follow_live_versions``).

        Example::

            store.append_events_live("txn_stats", lambda cur, pend: [(cur, 86_400_000_000)], ["1001"],
                                     [[("n:9f1c", b'[1767225600000000,null,0,12.5]')]], now)
            # ("3f2a9c0b1d2e", {"3f2a9c0b1d2e": 1})
        """
        return None

    def read_events(self, view: str, version: str, keys: Sequence[str]) -> list[list[bytes]]:
        """The event payloads of each entity of ``keys`` (in any order; ``[]`` for none or expired), one round trip.

        Example::

            store.read_events("txn_stats", "3f2a9c0b1d2e", ["1001", "1002"])  # [[b'[1767225600000000,...]'], []]
        """
        raise OnlineStoreError(f"{type(self).__name__} does not support aggregation views (read_events)")

    async def aread_events(self, view: str, version: str, keys: Sequence[str]) -> list[list[bytes]]:
        """``read_events`` for the event loop; stores with a native async client override it."""
        return self.read_events(view, version, keys)

    def scan_events(self, view: str, version: str) -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
        """Every entity of ``view``/``version`` holding events, with its ``(identity, payload)`` pairs, lazily.

        A version switch carries the pushed events the new version's offline events lack.

        Example::

            dict(store.scan_events("txn_stats", "3f2a9c0b1d2e"))  # {"1001": [("n:9f1c", b'[1767225600000000,...]')]}
        """
        raise OnlineStoreError(f"{type(self).__name__} does not support aggregation views (scan_events)")

    @abc.abstractmethod
    def pushed_keys(self, view: str, version: str) -> list[str]:
        """The entity keys ever pushed to ``view``/``version`` (carried forward when a new version goes live).

        Example::

            store.pushed_keys("driver_stats", "3f2a9c0b1d2e")  # ["1001"]
        """

    @abc.abstractmethod
    def pointers(self, view: str) -> tuple[str | None, str | None]:
        """``(current, pending)`` versions of ``view``, read atomically in one round trip.

        *pending* is the version a materialization is writing before it goes live (``None``
        when none is, or when it equals *current*). A push writes to both and then reads
        the pointers again: if they changed meanwhile it writes again, so no pushed row is
        lost across a version switch.

        Example::

            store.pointers("driver_stats")  # ("3f2a9c0b1d2e", "77aa01c2b3d4")
        """

    @abc.abstractmethod
    def set_pending_version(self, view: str, version: str) -> None:
        """Mark ``version`` as being written for ``view`` (pushes start writing to it too)."""

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
    def set_current_version(self, view: str, version: str, *, if_absent: bool = False) -> None:
        """Point readers of ``view`` at ``version`` (call once it is completely written).

        A pending mark equal to ``version`` is then no longer pending. ``if_absent`` sets the
        pointer only if the view has none (atomically: a first push never overrides a switch).
        """

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
        """Remove the rows of one version (or of every version and the pointers); return rows removed.

        Event states (``append_events``) go too. The version's watermark, newest event and pushed keys go with it.
        """

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
