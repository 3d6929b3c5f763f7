"""The aggregation state's rebuild rule, shared by the stores that run it in Python (memory, SQLite).

Redis runs the same rule in ``scripts.APPEND_EVENTS``; the contract suite checks they agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from featurestore.online.codec import event_time_us

__all__ = ["event_content", "superseded"]


def event_content(payload: bytes) -> bytes:
    """An encoded event (``[event_ts_us, created_us, seq, v1, ..., vN]``) without its ``seq``: what the event is,
    not where it was read from, so a pushed event and the same event read back from the offline store are equal."""
    first = payload.index(b",")
    second = payload.index(b",", first + 1)
    third = payload.find(b",", second + 1)
    return payload[:second] + payload[third if third >= 0 else len(payload) - 1 :]


def superseded(stored: Sequence[tuple[str, bytes]], rebuilt: Sequence[tuple[str, bytes]]) -> list[str]:
    """The identities of the stored events a rebuild of the entity from the offline store replaces.

    A stored event is replaced when the rebuild has its identity (an event id), or when it is
    at or before the newest rebuilt event and equal (``event_content``) to a rebuilt event no
    other stored event matched: the offline copy of a pushed event. Pushed events the offline
    store does not hold (pushed without ``to_offline``, late or not) stay, as do events after
    the newest rebuilt one. With no rebuilt events, everything stored is replaced.
    """
    if not rebuilt:
        return [ident for ident, _ in stored]
    upto = max(event_time_us(p) for _, p in rebuilt)
    ids = {ident for ident, _ in rebuilt}
    held = {ident for ident, _ in stored}
    unmatched = Counter(event_content(p) for ident, p in rebuilt if ident not in held)
    out = []
    for ident, payload in stored:
        if ident in ids:
            out.append(ident)
        elif event_time_us(payload) <= upto:
            content = event_content(payload)
            if unmatched[content] > 0:
                unmatched[content] -= 1
                out.append(ident)
    return out
