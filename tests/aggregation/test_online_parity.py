"""Online: values after pushing the events in random order, and after materialize, equal the brute force."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from tests.aggregation.brute import AGGREGATIONS, MINUTE, brute, dedupe, same
from tests.aggregation.conftest import (
    GRANULARITY,
    VIEWS,
    absolute,
    base_minute,
    event_streams,
    frame,
    from_us,
    to_us,
)
from tests.conftest import write_repo

STORES = ["memory", "sqlite", "redis", "redis-cluster"]


@pytest.fixture(params=STORES, scope="module")
def online_repo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeatureStore]:
    root = tmp_path_factory.mktemp(f"online-{request.param}") / "repo"
    url = {
        "memory": f"memory://{root.parent.name}",
        "sqlite": "sqlite:///data/online.db",
        "redis": str(request.getfixturevalue("redis_server").url) if request.param == "redis" else "",
        "redis-cluster": str(request.getfixturevalue("redis_cluster").url) if request.param == "redis-cluster" else "",
    }[request.param]
    write_repo(root, {"views.py": VIEWS}, f'project = "agg_{request.param.replace("-", "_")}"\nonline = "{url}"\n')
    (root / "data").mkdir()
    frame([]).write_parquet(root / "data" / "events.parquet")
    fs = FeatureStore(root)
    fs.apply()
    yield fs
    fs.online_store().close()


def _push_rows(events: list[dict[str, Any]], with_id: bool) -> list[dict[str, Any]]:
    rows = []
    for e in events:
        row = {
            "card_id": e["card_id"],
            "event_timestamp": from_us(e["ts"]).isoformat(),
            "created": None if e["created"] is None else from_us(e["created"]).isoformat(),
            "amount": e["amount"],
            "qty": e["qty"],
            "merchant": e["merchant"],
        }
        if with_id:
            row["eid"] = e["eid"]
        rows.append(row)
    return rows


def _check(fs: FeatureStore, orders: Callable[[str, int], list[dict[str, Any]]], times: list[int]) -> None:
    """Online values at ``times`` against the brute force over ``orders(view, card)``: that card's events in
    the order that breaks ``last``'s full ties (same time and created), which is how they reached the state."""
    cards = [1, 2, 3, 4]
    for view, granularity in GRANULARITY.items():
        for t in times:
            got = fs.get_online_features([f"{view}:*"], {"card_id": cards}, as_of=from_us(t)).to_dict()
            for i, card in enumerate(cards):
                order = orders(view, card)
                want = brute(dedupe(order) if view == "exact" else order, card, t, granularity)
                for name, _, function, _ in AGGREGATIONS:
                    assert same(function, got[name][i], want[name]), (view, name, card, got[name][i], want[name])


def _rebuilt(events: list[dict[str, Any]], view: str, card: int, end_us: int) -> bool:
    """Whether materialize(end) rebuilt the card's state: its newest event is inside the view's horizon at end
    (the longest window plus the granularity); otherwise the state it had (the pushes) stays."""
    horizon = max(m for *_, m in AGGREGATIONS) * MINUTE + (GRANULARITY[view] or 0)
    stamps = [e["ts"] for e in events if e["card_id"] == card]
    return bool(stamps) and max(stamps) > end_us - horizon


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stream=event_streams(),
    seed=st.integers(0, 2**32),
    batches=st.integers(1, 3),
    offsets=st.lists(st.integers(5, 75), min_size=1, max_size=4),
)
def test_online_values_equal_brute_force(
    online_repo: FeatureStore, stream: list[dict[str, Any]], seed: int, batches: int, offsets: list[int]
) -> None:
    fs = online_repo
    now = datetime.now(UTC)
    base = base_minute(now) - 92 * MINUTE
    events = absolute(stream, base)
    frame(events).write_parquet(fs.repo / "data" / "events.parquet")
    fs.ingest()
    store = fs.online_store()
    for view in GRANULARITY:
        store.delete(view)
    # every query is after the newest event and after the wall clock (windows end where state is complete)
    times = [base_minute(now) + m * MINUTE + d for m in offsets for d in (0, 1)]
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    if shuffled:
        size = -(-len(shuffled) // batches)
        for lo in range(0, len(shuffled), size):
            part = shuffled[lo : lo + size]
            fs.push("exact", _push_rows(part, with_id=True))
            fs.push("tiled", _push_rows(part, with_id=False))
    _check(fs, lambda view, card: shuffled, times)  # pushed: ties in arrival order
    # materialize(end=t) is the state as of t: as of the last query time, every event is in it
    end = max(from_us(max(times)), now) if times else now
    fs.materialize(list(GRANULARITY), end=end)
    # rebuilt from the offline rows: ties in their order in the offline store (the source's)
    _check(fs, lambda view, card: events if _rebuilt(events, view, card, to_us(end)) else shuffled, times)


def test_materialize_keeps_events_pushed_after_the_offline_data(online_repo: FeatureStore) -> None:
    """A rebuild from the offline events supersedes the state up to their newest event; later pushes stay."""
    fs = online_repo
    now = datetime.now(UTC)
    base = base_minute(now) - 30 * MINUTE
    offline = [
        {
            "card_id": 9,
            "ts": base + m * MINUTE,
            "created": None,
            "amount": 1.0,
            "qty": 1,
            "merchant": "o",
            "eid": f"o{m}",
        }
        for m in range(3)
    ]
    frame(offline).write_parquet(fs.repo / "data" / "events.parquet")
    fs.ingest()
    for view in GRANULARITY:
        fs.online_store().delete(view)
    fs.materialize(["exact"])
    late = {"card_id": 9, "ts": base + 20 * MINUTE, "created": None, "amount": 5.0, "qty": 2, "merchant": "p"}
    fs.push("exact", _push_rows([{**late, "eid": "pushed"}], with_id=True))  # online only, after the offline data
    fs.materialize(["exact"])  # rebuilt from the offline events: the pushed one is newer than all of them
    got = fs.get_online_features(["exact:n_1h", "exact:sum_1h"], {"card_id": [9]}).to_dict()
    assert (got["n_1h"], got["sum_1h"]) == ([4], [8.0])


def test_materialize_keeps_late_pushed_events_the_offline_store_lacks(online_repo: FeatureStore) -> None:
    """A pushed event older than the newest offline one, never written offline, survives a rebuild; the pushed
    copies of offline events (equal but for where they were read) are replaced, so nothing counts twice."""
    fs = online_repo
    base = base_minute(datetime.now(UTC)) - 30 * MINUTE
    offline = [
        {"card_id": 8, "ts": base + m * MINUTE, "created": None, "amount": 1.0, "qty": 1, "merchant": "o", "eid": None}
        for m in range(3)
    ]
    frame(offline).write_parquet(fs.repo / "data" / "events.parquet")
    fs.ingest()
    for view in GRANULARITY:
        fs.online_store().delete(view)
    late = {"card_id": 8, "ts": base + MINUTE // 2, "created": None, "amount": 5.0, "qty": 2, "merchant": "p"}
    fs.push("tiled", _push_rows([*offline, {**late, "eid": None}], with_id=False))  # the offline ones pushed too
    fs.push("exact", _push_rows([{**late, "eid": "late"}], with_id=True))
    fs.materialize(list(GRANULARITY))
    for view in GRANULARITY:
        got = fs.get_online_features([f"{view}:n_1h", f"{view}:sum_1h"], {"card_id": [8]}).to_dict()
        assert (got["n_1h"], got["sum_1h"]) == ([4], [8.0]), view
