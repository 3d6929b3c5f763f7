"""Redis Cluster aggregation state: per-entity script calls and reads, pipelined to every master at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis.exceptions as rex

from featurestore.online.cluster_nodes import ClusterNodes
from featurestore.online.cluster_wire import Addr, pack, refused, reply_or_error, slot_of
from featurestore.online.redis_wire import checked_out
from featurestore.online.scripts import APPEND_EVENTS, APPEND_EVENTS_SHA, events_only

__all__ = ["append_pipelined", "read_pipelined"]

# Events per pipelined round to one node: a rebuild's script calls read their entities' stored
# events, and a round must end well inside the socket timeout on a busy node.
_EVENTS_CHUNK = 1000


def append_pipelined(
    cluster: ClusterNodes,
    prefix: str,
    keys: Sequence[str],
    events: Sequence[Sequence[tuple[str, bytes]]],
    horizon_us: int,
    replace: bool,
) -> int:
    """``OnlineStore.append_events`` on a cluster: one ``APPEND_EVENTS`` call per entity, pipelined per master.

    An entity's hash is one key, so one slot: each call is atomic per entity, as the contract
    asks. Each round sends every master its next ~``_EVENTS_CHUNK`` events, then reads the
    replies, so a push of 100 entities is one round trip to each master at once. An entity
    whose slot moved (MOVED/ASK) goes through its new owner alone. Returns the events added.
    """
    full = [prefix + k for k in keys]
    flag = 1 if replace else 0

    def args_of(i: int) -> list[Any]:
        args: list[Any] = [1, full[i], 1, horizon_us, flag, len(events[i])]
        for ident, payload in events[i]:
            args.extend((ident, payload))
        return args

    cluster.refresh_if_due()
    queues = [(addr, _event_chunks(idx, events)) for addr, idx in cluster.group(prefix, keys).items()]
    added, moved = 0, []
    while any(chunks for _, chunks in queues):
        rounds = [(addr, chunks.pop(0)) for addr, chunks in queues if chunks]
        for count, not_here in _append_round(
            cluster, rounds, lambda i: pack("EVALSHA", APPEND_EVENTS_SHA, *args_of(i)), replace
        ):
            added += count
            moved.extend(not_here)
    for i in moved:  # the slot was not where the map said
        added += int(cluster.call(slot_of(full[i]), "EVAL", APPEND_EVENTS, *args_of(i)))
    return added


def _append_round(
    cluster: ClusterNodes, rounds: list[tuple[Addr, list[int]]], command: Callable[[int], bytes], bulk: bool
) -> list[tuple[int, list[int]]]:
    """Send each node its entities' script calls, then read them: (events added, entities redirected) per node."""
    clients = [cluster.bulk_node(a) if bulk else cluster.node(a) for a, _ in rounds]
    out: list[tuple[int, list[int]]] = []
    with checked_out(*clients) as conns:
        for conn, (_, idx) in zip(conns, rounds, strict=True):
            conn.send_packed_command([b"".join([command(i) for i in idx])])
        for conn, (_, idx) in zip(conns, rounds, strict=True):
            count, moved, missing = _read_appends(conn, idx)
            if missing:  # first use on this node (or after a restart or failover): load, send again
                conn.send_command("SCRIPT", "LOAD", APPEND_EVENTS)
                conn.read_response()
                conn.send_packed_command([b"".join([command(i) for i in missing])])
                again, moved_again, _ = _read_appends(conn, missing)
                count, moved = count + again, moved + moved_again
            out.append((count, moved))
    return out


def _read_appends(conn: Any, idx: list[int]) -> tuple[int, list[int], list[int]]:
    """The replies of ``idx``'s script calls: events added, entities redirected, entities whose script was missing."""
    count, moved, missing = 0, [], []
    for i in idx:
        reply = reply_or_error(conn)
        if isinstance(reply, rex.NoScriptError):
            missing.append(i)
        elif isinstance(reply, rex.AskError):  # MOVED or ASK
            moved.append(i)
        elif isinstance(reply, Exception):
            raise refused(reply)
        else:
            count += int(reply)
    return count, moved, missing


def read_pipelined(cluster: ClusterNodes, prefix: str, keys: Sequence[str]) -> list[list[bytes]]:
    """``OnlineStore.read_events`` on a cluster: HVALS per entity, sent to every master before any reply is read."""
    return [events_only(value) for value in cluster.read_each(prefix, keys, "HVALS")]


def _event_chunks(idx: list[int], events: Sequence[Sequence[tuple[str, bytes]]]) -> list[list[int]]:
    """``idx`` cut into runs of about ``_EVENTS_CHUNK`` events (whole entities)."""
    chunks: list[list[int]] = [[]]
    size = 0
    for i in idx:
        if chunks[-1] and size + len(events[i]) > _EVENTS_CHUNK:
            chunks.append([])
            size = 0
        chunks[-1].append(i)
        size += len(events[i])
    return chunks
