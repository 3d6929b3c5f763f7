"""The one-pass window evaluation (events sorted once, windows as slices) equals a filter per aggregation."""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore.dsl.aggregation import AggFunction
from featurestore.registry.spec import EventsSpec, WindowSpec
from featurestore.serving.windows import evaluate, window_start
from tests.aggregation.brute import AGGREGATIONS, EXACT, MINUTE, same

SPEC = EventsSpec(
    columns={"amount": None, "qty": None, "merchant": None, "eid": None},  # type: ignore[dict-item]
    event_id="eid",
    granularity_us=None,
    aggregations=tuple(WindowSpec(n, c, AggFunction(f), m * MINUTE) for n, c, f, m in AGGREGATIONS),
)
POSITION = {"amount": 3, "qty": 4, "merchant": 5}


def per_aggregation(spec: EventsSpec, payloads: list[bytes], t_us: int) -> list[Any]:
    """The definition read literally: each aggregation filters every event by its window."""
    events = [orjson.loads(p) for p in payloads]
    out: list[Any] = []
    for agg in spec.aggregations:
        start = window_start(t_us, agg.window_us, spec.granularity_us)
        inside = [e for e in events if start < e[0] <= t_us]
        if agg.function is AggFunction.COUNT:
            out.append(len(inside))
            continue
        i = POSITION[agg.column]
        values = [e for e in inside if e[i] is not None]
        if agg.function is AggFunction.LAST:
            best = None
            for e in values:  # the first of the greatest (time, created, seq), in the store's order
                key = (e[0], -(2**63) if e[1] is None else e[1], e[2])
                if best is None or key > best[0]:
                    best = (key, e[i])
            out.append(None if best is None else best[1])
            continue
        vals = [e[i] for e in values]
        f = agg.function
        if f is AggFunction.COUNT_DISTINCT:
            out.append(len(set(vals)))
        elif f is AggFunction.SUM:
            out.append(math.fsum(vals) if vals else 0)
        elif not vals:
            out.append(None)
        elif f is AggFunction.MIN:
            out.append(min(vals))
        elif f is AggFunction.MAX:
            out.append(max(vals))
        elif f is AggFunction.MEAN:
            out.append(math.fsum(vals) / len(vals))
        else:
            mean = math.fsum(vals) / len(vals)
            out.append(None if len(vals) < 2 else math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (len(vals) - 1)))
    return out


events = st.lists(
    st.tuples(
        st.integers(-90, 30),  # minutes around t: events after t (an as_of in the past) do not count
        st.sampled_from([None, 0, 5]),
        st.integers(0, 3),  # seq: full ties of last happen
        st.one_of(st.none(), st.floats(-100, 100, allow_nan=False)),
        st.one_of(st.none(), st.integers(0, 9)),
        st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(stream=events, granularity=st.sampled_from([None, 5 * MINUTE]), t_offset=st.integers(0, 10 * MINUTE))
def test_one_pass_equals_a_filter_per_aggregation(
    stream: list[tuple[Any, ...]], granularity: int | None, t_offset: int
) -> None:
    t_us = 1_767_225_600_000_000 + t_offset
    spec = EventsSpec(SPEC.columns, SPEC.event_id, granularity, SPEC.aggregations)
    payloads = [orjson.dumps([t_us + m * MINUTE, c, s, a, q, mer]) for m, c, s, a, q, mer in stream]
    got, want = evaluate(spec, payloads, t_us), per_aggregation(spec, payloads, t_us)
    for (name, _, function, _), g, w in zip(AGGREGATIONS, got, want, strict=True):
        assert same(function, g, w), (name, g, w)
        if function in EXACT:
            assert g == w, (name, g, w)
