"""Online lookups: feature references -> a cached plan -> store keys -> Feast-shaped results with statuses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import orjson

from featurestore.errors import InvalidRequestError, NotFoundError, RegistryError
from featurestore.online.codec import format_timestamps, now_us, timestamps_json
from featurestore.registry.refs import resolve_features
from featurestore.registry.store import RegistryState
from featurestore.serving.keys import check_key_dtypes, entity_keys
from featurestore.serving.windows import aread_aggregated, read_aggregated, to_us

__all__ = [
    "ViewLookup",
    "LookupPlan",
    "plan_lookup",
    "check_entities",
    "layout_of",
    "assemble",
    "assemble_json",
    "rows_text",
    "ROW_SEPARATOR",
    "OnlineFeatures",
    "read_online",
    "lookup",
    "alookup",
    "aread_views",
    "view_keys",
    "PRESENT",
    "NULL_VALUE",
    "NOT_FOUND",
    "OUTSIDE_MAX_AGE",
]

PRESENT = "PRESENT"
NULL_VALUE = "NULL_VALUE"
NOT_FOUND = "NOT_FOUND"
OUTSIDE_MAX_AGE = "OUTSIDE_MAX_AGE"
EPOCH = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class ViewLookup:
    """The part of a request served by one view."""

    name: str
    join_keys: list[str]
    key_dtypes: list[str]
    features: list[str]
    output_names: list[str]
    ttl_us: int | None
    aggregated: bool = False  # an aggregation view: values computed from its events at request time


@dataclass(frozen=True)
class LookupPlan:
    """A resolved request: which views and features, and the response's column names."""

    views: list[ViewLookup]
    entity_columns: list[str]
    feature_names: list[str]
    # Every join key the registry knows: a request may send ones its views do not use (echoed, as Feast does).
    known_keys: frozenset[str] = frozenset()
    names_json: bytes = b"[]"  # feature_names as JSON, the response's constant header


def plan_lookup(state: RegistryState, features: str | Sequence[str], full_feature_names: bool = False) -> LookupPlan:
    """Resolve references (or a service) once; raise ``RequestError`` (404) naming anything unknown."""
    try:
        resolved = resolve_features(state, features)
    except RegistryError as exc:
        raise NotFoundError(str(exc)) from None
    views = []
    entity_columns: list[str] = []
    for spec, feats in resolved:
        check_key_dtypes(spec.name, spec.join_keys)
        keys = list(spec.join_keys)
        for k in keys:
            if k not in entity_columns:
                entity_columns.append(k)
        ttl = spec.ttl
        views.append(
            ViewLookup(
                name=spec.name,
                join_keys=keys,
                key_dtypes=[str(t) for t in spec.join_keys.values()],
                features=feats,
                output_names=[f"{spec.name}__{f}" if full_feature_names else f for f in feats],
                ttl_us=None if ttl is None else int(ttl.total_seconds() * 1_000_000),
                aggregated=spec.events is not None,
            )
        )
    names = [*entity_columns, *(n for v in views for n in v.output_names)]
    if len(set(names)) != len(names):
        raise InvalidRequestError("feature names collide across views; pass full_feature_names=true")
    known = {k for e in state.entities.values() for k in e.get("join_keys", ())}
    known.update(k for spec in state.views.values() for k in spec.join_keys)
    return LookupPlan(views, entity_columns, names, frozenset(known) | set(entity_columns), orjson.dumps(names))


def check_entities(entities: Any, max_entities: int) -> int:
    """Check the request's ``entities`` object shape; return the number of entity rows."""
    if not isinstance(entities, dict) or not entities:
        raise InvalidRequestError("'entities' must be a non-empty object {join_key: [values...]}")
    n = -1
    for name, values in entities.items():
        if not isinstance(values, list):
            raise InvalidRequestError(f"entities[{name!r}] must be a list of values")
        if n == -1:
            n = len(values)
        elif len(values) != n:
            raise InvalidRequestError("every entity key list must have the same length")
    if n == 0:
        raise InvalidRequestError("no entities given")
    if n > max_entities:
        raise InvalidRequestError(f"too many entities: {n} > {max_entities} (setting max_entities)")
    return n


def layout_of(state: RegistryState, view: str, version: str) -> dict[str, int]:
    """Feature name -> position in the encoded rows of ``view``/``version`` (position 0 is the event time)."""
    try:
        spec = state.view(view, version)
    except RegistryError:
        return {}
    return {f: i + 1 for i, f in enumerate(spec.features)}


def view_keys(plan: LookupPlan, entities: dict[str, list[Any]], n: int) -> list[list[str]]:
    """The store keys of each view of the plan, checking entity key names and value types.

    Join keys of other registered entities are accepted and echoed in the response (as Feast
    does); a name no entity declares is refused.
    """
    if len(entities) != len(plan.entity_columns):
        extra = [k for k in entities if k not in plan.entity_columns]
        unknown = [k for k in extra if k not in plan.known_keys]
        if unknown:
            raise InvalidRequestError(f"unknown entity key(s) {unknown}; the requested views use {plan.entity_columns}")
        clash = [k for k in extra if k in plan.feature_names]
        if clash:
            raise InvalidRequestError(f"entity column(s) {clash} have the name of a requested feature")
    return [entity_keys(entities, v.join_keys, v.key_dtypes, n) for v in plan.views]


# One view's answer: the event time of each entity's row (microseconds; 0 for a missing row), and per
# requested feature its values and statuses. Status lists that are all PRESENT are one shared object per view.
ViewColumns = tuple[Sequence[int], list[tuple[Sequence[Any], list[str]]]]


# Between a view's stored rows in the text the assembly decodes (JSON reads the newline as whitespace)
# and the served-feature log keeps: its converter splits the rows on it.
ROW_SEPARATOR = b",\n"


def rows_text(rows: Sequence[bytes | None]) -> bytes | None:
    """A view's stored rows as one text, a row per line, each but the last ending with a comma (a JSON
    array without its brackets), or None when a row is missing: what the assembly decodes at once, and
    what the served-feature log keeps (its converter drops the commas)."""
    if len(rows) <= 1:
        return rows[0] if rows else None
    try:
        return ROW_SEPARATOR.join(rows)  # type: ignore[arg-type]
    except TypeError:  # a None: some entity has no row
        return None


def _view_columns(
    view: ViewLookup, rows: list[bytes | None], layout: dict[str, int], now: int, body: bytes | None
) -> ViewColumns:
    """Decode one view's rows and transpose them into per-feature columns, statuses computed once per row
    (``body``: the rows' :func:`rows_text`)."""
    ttl = view.ttl_us
    if body is not None:
        # Usual case: every entity has a row. One decode for all of them, one C-level transpose.
        columns = list(zip(*orjson.loads(b"[" + body + b"]"), strict=False))
        # No "null" in the text: no column holds a None (a string holding "null" only costs the check below).
        # JSON numbers and booleans hold no "n": one memchr clears the usual all-numeric rows.
        maybe_null = b"n" in body and b"null" in body
        times = columns[0]
        if ttl is None or min(times) + ttl >= now:
            present = [PRESENT] * len(rows)
            out: list[tuple[Sequence[Any], list[str]]] = []
            for feat in view.features:
                idx = layout.get(feat)
                if idx is None or idx >= len(columns):
                    out.append(([None] * len(rows), [NOT_FOUND] * len(rows)))
                    continue
                col = columns[idx]
                if maybe_null and None in col:
                    out.append((col, [PRESENT if v is not None else NULL_VALUE for v in col]))
                else:
                    out.append((col, present))
            return times, out
    # Some rows missing or expired: statuses per row first, then each feature column.
    loads = orjson.loads
    decoded: list[list[Any] | None] = []
    base: list[str] = []
    stamps_us: list[int] = []
    for raw in rows:
        if raw is None:
            decoded.append(None)
            base.append(NOT_FOUND)
            stamps_us.append(0)  # formats as the epoch, as Feast answers for a missing row
            continue
        row = loads(raw)
        ts = row[0]
        stamps_us.append(ts)
        if ttl is not None and ts + ttl < now:
            decoded.append(None)
            base.append(OUTSIDE_MAX_AGE)
        else:
            decoded.append(row)
            base.append(PRESENT)
    out = []
    for feat in view.features:
        idx = layout.get(feat)
        values: list[Any] = []
        statuses: list[str] = []
        for row, status in zip(decoded, base, strict=True):
            if row is None or idx is None or idx >= len(row):
                values.append(None)
                statuses.append(status if idx is not None and row is None else NOT_FOUND)
            else:
                value = row[idx]
                values.append(value)
                statuses.append(PRESENT if value is not None else NULL_VALUE)
        out.append((values, statuses))
    return stamps_us, out


def assemble(
    plan: LookupPlan,
    entities: dict[str, list[Any]],
    n: int,
    rows_per_view: list[list[bytes | None]],
    layouts: list[dict[str, int]],
    t_us: int | None = None,
) -> dict[str, Any]:
    """The Feast feature-server response: entity columns first, then each feature's values and statuses.

    ``entities`` must have passed :func:`view_keys`: every column it holds is echoed. A row older than
    its view's ttl at ``t_us`` (the request time, microseconds; default now) is OUTSIDE_MAX_AGE.
    """
    now = now_us() if t_us is None else t_us
    # The request's entity columns come first, in its order (as Feast answers), used by the views or not.
    keys = list(entities)
    results: list[dict[str, Any]] = [
        {"values": entities[k], "statuses": [PRESENT] * n, "event_timestamps": [EPOCH] * n} for k in keys
    ]
    for view, rows, layout in zip(plan.views, rows_per_view, layouts, strict=True):
        stamps_us, columns = _view_columns(view, rows, layout, now, rows_text(rows))
        stamps = format_timestamps(list(stamps_us))
        for values, statuses in columns:
            results.append({"values": list(values), "statuses": statuses, "event_timestamps": stamps})
    names = [*keys, *plan.feature_names[len(plan.entity_columns) :]]
    return {"metadata": {"feature_names": names}, "results": results}


@lru_cache(maxsize=256)
def _repeated_json(word: str, n: int) -> bytes:
    """``[word, word, ...]`` (n times) as JSON: the constant status and time lists of a response."""
    return orjson.dumps([word] * n)


@lru_cache(maxsize=256)
def _entity_tail(n: int) -> bytes:
    """What follows the values of an entity column: all PRESENT, event times at the epoch."""
    return b',"statuses":' + _repeated_json(PRESENT, n) + b',"event_timestamps":' + _repeated_json(EPOCH, n) + b"}"


def assemble_json(
    plan: LookupPlan,
    entities: dict[str, list[Any]],
    n: int,
    rows_per_view: list[list[bytes | None]],
    layouts: list[dict[str, int]],
    t_us: int | None = None,
    texts: Sequence[bytes | None] | None = None,
) -> tuple[bytes, dict[str, int]]:
    """:func:`assemble`'s response serialised (the server's path), and how many values had each status.

    The same JSON as ``orjson.dumps(assemble(...))``, built from parts: each view's event times
    and each distinct status list are serialised once and repeated as bytes, not once per feature.
    ``texts``: each view's :func:`rows_text`, when the caller made them (to keep them); else made here.
    """
    now = now_us() if t_us is None else t_us
    dumps = orjson.dumps
    keys = list(entities)
    if keys == plan.entity_columns:
        names = plan.names_json
    else:
        names = dumps([*keys, *plan.feature_names[len(plan.entity_columns) :]])
    tail = _entity_tail(n)
    # The response's pieces, joined once at the end (each value column is copied once, not three times).
    parts = [b'{"metadata":{"feature_names":', names, b'},"results":[']
    for k in keys:
        parts += (b'{"values":', dumps(entities[k]), tail, b",")
    tally: dict[str, int] = {}
    if texts is None:
        texts = [rows_text(rows) for rows in rows_per_view]
    for view, rows, layout, body in zip(plan.views, rows_per_view, layouts, texts, strict=True):
        stamps_us, columns = _view_columns(view, rows, layout, now, body)
        stamps_part = b',"event_timestamps":' + timestamps_json(stamps_us) + b"}"
        # By the identity of a status list: a view's all-PRESENT columns share one.
        tails: dict[int, tuple[bytes, list[str], list[int]]] = {}
        for values, statuses in columns:
            seen = tails.get(id(statuses))
            if seen is None:
                seen = tails[id(statuses)] = (b',"statuses":' + dumps(statuses) + stamps_part, statuses, [0])
            parts += (b'{"values":', dumps(values), seen[0], b",")
            seen[2][0] += 1
        for _, statuses, (uses,) in tails.values():
            for status in set(statuses):
                tally[status] = tally.get(status, 0) + uses * statuses.count(status)
    parts[-1] = b"]}"  # the last item's comma
    return b"".join(parts), tally


class OnlineFeatures:
    """Online lookup results (SDK and HTTP client alike), in the Feast response shape.

    ``to_dict()`` gives ``{name: values}``; ``statuses()`` and ``event_timestamps()`` the same per value.
    """

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self.feature_names: list[str] = list(response["metadata"]["feature_names"])
        self.results: list[dict[str, Any]] = list(response["results"])

    def to_dict(self) -> dict[str, list[Any]]:
        return {n: r["values"] for n, r in zip(self.feature_names, self.results, strict=True)}

    def statuses(self) -> dict[str, list[str]]:
        return {n: r["statuses"] for n, r in zip(self.feature_names, self.results, strict=True)}

    def event_timestamps(self) -> dict[str, list[str]]:
        return {n: r["event_timestamps"] for n, r in zip(self.feature_names, self.results, strict=True)}

    def to_polars(self) -> Any:
        """A polars DataFrame, one column per entity key and feature."""
        import polars as pl

        return pl.DataFrame(self.to_dict(), strict=False)

    def to_pandas(self) -> Any:
        """A pandas DataFrame (needs pandas), as Feast's ``to_df()`` gives."""
        return self.to_polars().to_pandas()

    def to_arrow(self) -> Any:
        """A pyarrow Table."""
        return self.to_polars().to_arrow()

    def __getitem__(self, name: str) -> list[Any]:
        return self.to_dict()[name]

    def __repr__(self) -> str:
        return f"OnlineFeatures({self.to_dict()!r})"


# Feature name -> position in a view version's rows (the server caches it; the SDK reads the registry).
Layouts = Callable[[str, str], dict[str, int]]


def lookup(
    store: Any,
    state: RegistryState,
    plan: LookupPlan,
    entities: dict[str, list[Any]],
    n: int,
    versions: dict[str, str],
    layout: Layouts,
    t_us: int,
) -> dict[str, Any]:
    """One lookup, synchronous (the SDK): each view's rows at the version readers follow, assembled.

    Aggregation views are computed from their events with windows ending at ``t_us``.
    """
    rows, layouts = [], []
    for view, keys in zip(plan.views, view_keys(plan, entities, n), strict=True):
        version = versions.get(view.name)
        if view.aggregated:
            found, lay = read_aggregated(store, state, view.name, version, keys, t_us)
        elif version is None:
            found, lay = [None] * n, {}
        else:
            found, lay = store.read_rows(view.name, version, keys), layout(view.name, version)
        rows.append(found)
        layouts.append(lay)
    return assemble(plan, entities, n, rows, layouts)  # ttl judged now, whatever as_of the windows took


async def aread_views(
    store: Any,
    state: RegistryState,
    plan: LookupPlan,
    entities: dict[str, list[Any]],
    n: int,
    versions: dict[str, str],
    layout: Layouts,
    t_us: int,
) -> tuple[list[list[bytes | None]], list[dict[str, int]]]:
    """The reads of ``lookup`` for the event loop (the server): each view's rows and layout, not yet assembled."""
    rows, layouts = [], []
    for view, keys in zip(plan.views, view_keys(plan, entities, n), strict=True):
        version = versions.get(view.name)
        if view.aggregated:
            found, lay = await aread_aggregated(store, state, view.name, version, keys, t_us)
        elif version is None:
            found, lay = [None] * n, {}
        else:
            found, lay = await store.aread_rows(view.name, version, keys), layout(view.name, version)
        rows.append(found)
        layouts.append(lay)
    return rows, layouts


async def alookup(
    store: Any,
    state: RegistryState,
    plan: LookupPlan,
    entities: dict[str, list[Any]],
    n: int,
    versions: dict[str, str],
    layout: Layouts,
    t_us: int,
) -> dict[str, Any]:
    """``lookup`` for the event loop: :func:`aread_views` through the store's async client, assembled."""
    rows, layouts = await aread_views(store, state, plan, entities, n, versions, layout, t_us)
    return assemble(plan, entities, n, rows, layouts, t_us)


def read_online(
    state: RegistryState,
    store: Any,
    features: str | Sequence[str],
    entities: dict[str, Any],
    *,
    full_feature_names: bool = False,
    max_entities: int = 1000,
    as_of: Any = None,
) -> OnlineFeatures:
    """One synchronous lookup (the SDK path): plan, then ``lookup``.

    ``as_of`` (a datetime, default now) is the time aggregation views' windows end at.
    """
    if isinstance(entities, dict):
        entities = {k: [x.item() if hasattr(x, "item") else x for x in v] for k, v in entities.items()}
    plan = plan_lookup(state, features, full_feature_names)
    n = check_entities(entities, max_entities)
    t_us = now_us() if as_of is None else to_us(as_of)
    response = lookup(store, state, plan, entities, n, store.current_versions(), partial(layout_of, state), t_us)
    return OnlineFeatures(response)
