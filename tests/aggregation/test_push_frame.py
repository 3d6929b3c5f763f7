"""Pushed rows typed in one pass (the common push) equal the step-by-step typing, and faults are named the same."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from featurestore import FeatureStore
from featurestore.errors import InvalidRequestError
from featurestore.registry.spec import ViewSpec
from featurestore.serving import push
from tests.conftest import write_repo

VIEWS = """
from datetime import timedelta
from featurestore import Aggregation, Entity, Feature, FeatureView, Float64, Int64, ParquetSource, String, Timestamp

card = Entity("card", join_keys={"card_id": Int64})
shop = Entity("shop", join_keys={"shop": String})
txn = FeatureView(
    "txn", entities=[card], source=ParquetSource("data/txn.parquet", timestamp="ts"),
    features=[Feature("amount", Float64), Feature("qty", Int64), Feature("merchant", String)],
    aggregations=[Aggregation("amount", "sum", window=timedelta(hours=1))],
)
shops = FeatureView(
    "shops", entities=[shop], source=ParquetSource("data/shops.parquet", timestamp="ts"),
    features=[Feature("opened", Timestamp), Feature("rating", Float64)], ttl=timedelta(days=1),
)
"""


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ViewSpec]:
    root = write_repo(tmp_path_factory.mktemp("frame") / "repo", {"views.py": VIEWS}, 'project = "frame"\n')
    fs = FeatureStore(root)
    fs.apply(data_check=False)
    state = fs.state()
    return {"txn": state.view("txn").event_view(), "shops": state.view("shops")}


def step_by_step(spec: ViewSpec, rows: Any, monkeypatch: pytest.MonkeyPatch) -> pl.DataFrame:
    with monkeypatch.context() as m:
        m.setattr(push, "_typed_in_one_pass", lambda *a: None)
        return push.push_frame(spec, rows)


def both(spec: ViewSpec, rows: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """Each path's frame, or its error message."""
    out = []
    for typer in (push.push_frame, lambda s, r: step_by_step(s, r, monkeypatch)):
        try:
            out.append(typer(spec, rows))
        except InvalidRequestError as exc:
            out.append(str(exc))
    return out[0], out[1]


def assert_same(spec: ViewSpec, rows: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    fast, slow = both(spec, rows, monkeypatch)
    if isinstance(slow, str):
        assert fast == slow
    else:
        assert_frame_equal(fast, slow)
    return fast


BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
offsets = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))])
times = st.builds(
    lambda s, us, tz: (BASE + timedelta(seconds=s, microseconds=us)).astimezone(tz),
    st.integers(-(10**6), 10**6),
    st.sampled_from([0, 1, 500_000, 123_456, 999_999]),
    offsets,
)
texts = st.one_of(
    times.map(lambda t: t.isoformat()),  # the fast form
    times.map(lambda t: t.isoformat().replace("+00:00", "Z")),
    times.map(lambda t: t.strftime("%Y-%m-%d %H:%M:%S")),
    times.map(lambda t: t.isoformat()[:19] + ".1234567+00:00"),  # nanoseconds: rounded up
    st.just("2026-13-01T00:00:00+00:00"),
    st.just("not a time"),
    st.none(),
)
amounts = st.one_of(st.floats(allow_nan=True, allow_infinity=False, width=64), st.integers(-1000, 1000), st.none())


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "card_id": st.one_of(st.integers(0, 5), st.none()),
                "event_timestamp": st.one_of(texts, times.map(lambda t: t.isoformat())),
                "amount": amounts,
                "qty": st.one_of(st.integers(0, 9), st.none()),
                "merchant": st.one_of(st.sampled_from(["a", "b\x1fc"]), st.none()),
            }
        ),
        min_size=1,
        max_size=6,
    )
)
def test_event_rows_type_as_step_by_step(specs: dict[str, ViewSpec], rows: list[dict[str, Any]]) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert_same(specs["txn"], rows, monkeypatch)


def test_the_common_push_takes_the_one_pass(specs: dict[str, ViewSpec], monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [
        {"card_id": 1, "event_timestamp": "2026-03-01T12:00:00.5+02:00", "amount": math.nan, "qty": 1, "merchant": "a"},
        {"card_id": 2, "event_timestamp": "2026-03-01T12:00:00+00:00", "amount": 2, "qty": None, "merchant": None},
    ]
    df = pl.DataFrame(rows)
    typed = push._typed_in_one_pass(specs["txn"], df, ["event_timestamp"], [])
    assert typed is not None
    assert_frame_equal(typed, step_by_step(specs["txn"], rows, monkeypatch))
    assert typed.get_column("event_timestamp").to_list() == [
        datetime(2026, 3, 1, 10, 0, 0, 500_000, tzinfo=UTC),
        datetime(2026, 3, 1, 12, tzinfo=UTC),
    ]
    assert typed.get_column("amount").to_list() == [None, 2.0]  # NaN is null, ints are floats
    assert df.get_column("event_timestamp").dtype == pl.String  # the caller's frame is left as it was


def test_created_times_keys_and_timestamp_features(specs: dict[str, ViewSpec], monkeypatch: pytest.MonkeyPatch) -> None:
    t = "2026-03-01T12:00:00.000001+00:00"
    rows = [{"card_id": 1, "event_timestamp": t, "amount": 1.0, "qty": 1, "merchant": "a", "created": t}]
    assert assert_same(specs["txn"], rows, monkeypatch).columns[-1] == "created"
    frame = pl.DataFrame(rows).with_columns(pl.col("event_timestamp").str.to_datetime(time_zone="UTC"))
    assert_same(specs["txn"], frame, monkeypatch)
    shop_rows = [{"shop": "s1", "event_timestamp": t, "opened": "2020-01-01T00:00:00+01:00", "rating": 4.5}]
    assert_same(specs["shops"], shop_rows, monkeypatch)
    bad_key = [{**shop_rows[0], "shop": "a\x1fb"}]
    fast, _ = both(specs["shops"], bad_key, monkeypatch)
    assert "reserved character U+001F" in fast
    null_key = [{**shop_rows[0], "shop": None}]
    assert "may not be null" in both(specs["shops"], null_key, monkeypatch)[0]
    assert_same(specs["shops"], bad_key, monkeypatch)
    assert_same(specs["shops"], null_key, monkeypatch)


def test_the_gate_fast_path_lets_tied_events_through_but_not_tied_rows(specs: dict[str, ViewSpec]) -> None:
    from featurestore.validation.compile import compile_gate
    from featurestore.validation.gate import _clearly_passes

    t = datetime.now(UTC).replace(microsecond=0).isoformat()
    events = push.push_frame(
        specs["txn"], [{"card_id": 1, "event_timestamp": t, "amount": 1.0, "qty": 1, "merchant": "a"}] * 2
    )
    assert _clearly_passes(compile_gate(specs["txn"]), events)  # two events at one time both count
    row = {"shop": "s1", "event_timestamp": t, "opened": t, "rating": 1.0}
    rows = push.push_frame(specs["shops"], [row, row])
    assert not _clearly_passes(compile_gate(specs["shops"]), rows)  # one row per key and time: pandera says so
    assert _clearly_passes(compile_gate(specs["shops"]), rows.head(1))
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    late = push.push_frame(
        specs["txn"], [{"card_id": 1, "event_timestamp": future, "amount": 1.0, "qty": 1, "merchant": "a"}]
    )
    assert not _clearly_passes(compile_gate(specs["txn"]), late)  # past max_future


def test_events_without_an_id_get_distinct_random_identities(specs: dict[str, ViewSpec]) -> None:
    from featurestore.serving.windows import encode_events

    t = "2026-03-01T12:00:00+00:00"
    rows = [{"card_id": i % 7, "event_timestamp": t, "amount": 1.0, "qty": 1, "merchant": "a"} for i in range(1000)]
    spec = specs["txn"]
    encoded = encode_events(_events_spec(), list(spec.join_keys), push.push_frame(spec, rows))
    idents = [ident for entity in encoded.events for ident, _ in entity]
    assert len(idents) == len(set(idents)) == 1000
    assert all(i.startswith("n:") and len(i) == 18 for i in idents)
    assert sorted(encoded.keys) == [str(k) for k in range(7)]


def _events_spec() -> Any:
    from featurestore.dsl.aggregation import AggFunction
    from featurestore.registry.spec import EventsSpec, WindowSpec

    columns = {"amount": None, "qty": None, "merchant": None}
    return EventsSpec(columns, None, None, (WindowSpec("n", "amount", AggFunction.COUNT, 3_600_000_000),))  # type: ignore[arg-type]
