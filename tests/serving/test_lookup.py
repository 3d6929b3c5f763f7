"""The server's serialised lookup response is the SDK's dict response, and its status counts are right."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore.online.codec import now_us
from featurestore.serving.lookup import LookupPlan, ViewLookup, assemble, assemble_json

DAY_US = 86_400_000_000
NUMBERS = st.one_of(st.none(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False))
# "null" inside a string must not pass for a null value; commas and brackets must not split a value.
VALUES = st.one_of(NUMBERS, st.sampled_from(["null", "a,b", 'q"uote', "[x]", ""]), st.lists(NUMBERS, max_size=3))


def _plan(views: list[ViewLookup], extra_keys: list[str]) -> LookupPlan:
    entity_columns = ["driver_id"]
    names = [*entity_columns, *(n for v in views for n in v.output_names)]
    return LookupPlan(views, entity_columns, names, frozenset(entity_columns + extra_keys), orjson.dumps(names))


@st.composite
def lookups(
    draw: Any, fresh_only: bool = False
) -> tuple[LookupPlan, dict[str, list[Any]], int, list[list[bytes | None]], list[dict[str, int]]]:
    n = draw(st.integers(1, 40))
    now = now_us()
    views, rows_per_view, layouts = [], [], []
    for v in range(draw(st.integers(1, 3))):
        stored = [f"f{i}" for i in range(draw(st.integers(1, 5)))]
        # A requested feature the stored version may not have (NOT_FOUND for every entity).
        asked = draw(st.lists(st.sampled_from([*stored, "gone"]), min_size=1, max_size=6, unique=True))
        ttl = draw(st.sampled_from([None, 7 * DAY_US]))
        # Views of numbers only (no "null" text unless a value is null) and views of any values.
        values_of = draw(st.sampled_from([NUMBERS, VALUES]))
        views.append(ViewLookup(f"v{v}", ["driver_id"], ["Int64"], asked, [f"v{v}__{f}" for f in asked], ttl))
        layouts.append({f: i + 1 for i, f in enumerate(stored)})
        rows: list[bytes | None] = []
        for _ in range(n):
            kind = "fresh" if fresh_only else draw(st.sampled_from(["fresh", "fresh", "fresh", "missing", "expired"]))
            if kind == "missing":
                rows.append(None)
                continue
            # Event times far from the ttl boundary: both assemblies read the clock.
            ts = now - (30 * DAY_US if kind == "expired" else draw(st.integers(0, DAY_US)))
            values = [draw(values_of) for _ in stored]
            rows.append(orjson.dumps([ts, *values, 0]))
        rows_per_view.append(rows)
    entities: dict[str, list[Any]] = {"driver_id": list(range(n))}
    extra = ["car_id"] if draw(st.booleans()) else []
    if extra:  # a join key of another entity, echoed first in the request's order
        entities = {"car_id": [f"c{i}" for i in range(n)], **entities}
    return _plan(views, extra), entities, n, rows_per_view, layouts


@settings(max_examples=200, deadline=None)
@given(lookups())
def test_serialised_response_is_the_dict_response(case: Any) -> None:
    _same_response(case)


@settings(max_examples=200, deadline=None)
@given(lookups(fresh_only=True))
def test_fresh_rows_give_the_dict_response(case: Any) -> None:
    """Every row present and fresh: the one-decode transpose path of numbers, and of any values."""
    _same_response(case)


def _same_response(case: Any) -> None:
    plan, entities, n, rows, layouts = case
    body, tally = assemble_json(plan, entities, n, rows, layouts)
    expected = assemble(plan, entities, n, rows, layouts)
    assert body == orjson.dumps(expected)
    served = Counter(s for r in expected["results"][len(entities) :] for s in r["statuses"])
    assert tally == dict(served)


def test_all_present_rows_share_one_status_list_and_count_once_per_value() -> None:
    now = now_us()
    view = ViewLookup("v", ["driver_id"], ["Int64"], ["a", "b"], ["a", "b"], None)
    rows: list[bytes | None] = [orjson.dumps([now - i, i, None if i == 1 else 2.5, 0]) for i in range(3)]
    body, tally = assemble_json(_plan([view], []), {"driver_id": [0, 1, 2]}, 3, [rows], [{"a": 1, "b": 2}])
    data = orjson.loads(body)
    assert data["metadata"] == {"feature_names": ["driver_id", "a", "b"]}
    assert data["results"][1]["statuses"] == ["PRESENT"] * 3
    assert data["results"][2] == {
        "values": [2.5, None, 2.5],
        "statuses": ["PRESENT", "NULL_VALUE", "PRESENT"],
        "event_timestamps": data["results"][1]["event_timestamps"],
    }
    assert tally == {"PRESENT": 5, "NULL_VALUE": 1}


def test_rows_written_by_the_encoder_are_served_as_their_values() -> None:
    """Rows as polars writes them (the materialize path) are served as their values."""
    import polars as pl

    from featurestore.online.codec import encode_rows

    frame = pl.DataFrame(
        {
            "driver_id": [1, 2, 3],
            "event_timestamp": pl.Series([1_767_225_600_000_000 + i for i in range(3)]).cast(pl.Datetime("us", "UTC")),
            "a": [0.1, None, -2.5e-300],
            "b": [1, 2, None],
            "c": [True, False, None],
        }
    )
    rows: list[bytes | None] = list(encode_rows(frame, ["driver_id"], ["a", "b", "c"], None).rows)
    view = ViewLookup("v", ["driver_id"], ["Int64"], ["c", "a", "b"], ["c", "a", "b"], None)
    plan, entities = _plan([view], []), {"driver_id": [1, 2, 3]}
    body, tally = assemble_json(plan, entities, 3, [rows], [{"a": 1, "b": 2, "c": 3}])
    assert orjson.loads(body) == assemble(plan, entities, 3, [rows], [{"a": 1, "b": 2, "c": 3}])
    assert [r["values"] for r in orjson.loads(body)["results"][1:]] == [
        [True, False, None],
        [0.1, None, -2.5e-300],
        [1, 2, None],
    ]
    assert tally == {"PRESENT": 6, "NULL_VALUE": 3}


def test_a_string_key_holding_the_separator_is_refused_naming_it() -> None:
    import pytest

    from featurestore.errors import InvalidRequestError
    from featurestore.serving.keys import entity_keys

    with pytest.raises(InvalidRequestError, match="U\\+001F"):
        entity_keys({"user": ["a\x1fb"]}, ["user"], ["String"], 1)
    assert entity_keys({"user": ["ab"]}, ["user"], ["String"], 1) == ["ab"]
