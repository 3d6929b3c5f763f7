"""The spool converter (its CSV path writes the same Parquet as its JSON path) and where the spool lives."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import orjson
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from featurestore.server import served_spool
from featurestore.server.served_log import ServedLog, served_files, spool_dir
from featurestore.serving.lookup import LookupPlan, ViewLookup, rows_text

NOW = 1_790_000_000_000_000
TTL = 3_600_000_000

# One type per feature, as a view's feature has one (nulls mix in); whole floats (1.0) are typed alike by both.
KINDS = [
    st.text(),
    st.lists(st.integers(-5, 5), max_size=3),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-1000, 1000).map(float),
]


@st.composite
def lookups(draw: st.DrawFn) -> tuple[list[ViewLookup], list[tuple[list[int], list[list[bytes | None]]]]]:
    """Views of 1-4 features and a few lookups of their stored rows: missing, stale, of one width or ragged."""
    views = []
    for v in range(draw(st.integers(1, 2))):
        features = [f"f{j}" for j in range(draw(st.integers(1, 4)))]
        ttl = draw(st.sampled_from([None, TTL]))
        views.append(ViewLookup(f"v{v}", ["id"], ["int64"], features, features, ttl))
    # One kind per column per view, as a view's feature has one type (None mixes in as nulls).
    kinds = [[draw(st.sampled_from(KINDS)) for _ in v.features] for v in views]
    ragged = draw(st.booleans())
    out = []
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.integers(1, 6))
        keys = draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n))
        per_view = []
        for kind in kinds:
            rows: list[bytes | None] = []
            for _ in range(n):
                if draw(st.integers(0, 5)) == 0:
                    rows.append(None)
                    continue
                width = draw(st.integers(1, len(kind))) if ragged else len(kind)
                row = [draw(st.none() | k) for k in kind[:width]]
                stamp = NOW - draw(st.sampled_from([0, TTL - 1, TTL + 1, 10 * TTL]))
                rows.append(orjson.dumps([stamp, *row, NOW + 1]))
            per_view.append(rows)
        out.append((keys, per_view))
    return views, out


def _converted(spool: Path, csv: bool) -> dict[str, pl.DataFrame]:
    """Convert a copy of a spool folder with one path; the Parquet written, per target."""
    root = Path(tempfile.mkdtemp())
    try:
        shutil.copytree(spool, spool_dir(root))
        for path in served_spool.sealed_files(root):
            served_spool._convert_file(root, path, csv=csv)
        targets = sorted(p.name for p in (root / "_served").iterdir() if not p.name.startswith("."))
        return {t: pl.concat([pl.read_parquet(f) for f in served_files(root, t)], how="diagonal") for t in targets}
    finally:
        shutil.rmtree(root)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lookups(), st.booleans(), st.booleans())
def test_csv_and_json_paths_write_the_same_parquet(case, service: bool, texts: bool) -> None:  # type: ignore[no-untyped-def]
    views, logged = case
    plan = LookupPlan(views, ["id"], [f"{v.name}__{f}" for v in views for f in v.features])
    layouts = [{f: j + 1 for j, f in enumerate(v.features)} for v in views]
    with tempfile.TemporaryDirectory() as tmp:
        log = ServedLog(Path(tmp), 1.0)
        for keys, rows in logged:
            # As the server (the assembly's texts) or as a caller without them (joined in the flush).
            made = [rows_text(r) for r in rows] if texts else None
            log.record("svc" if service else None, plan, {"id": keys}, rows, layouts, None, made)
        with log._io_lock:
            log._spool_queue()
            log._seal()
        by_csv, by_json = _converted(spool_dir(Path(tmp)), True), _converted(spool_dir(Path(tmp)), False)
    assert by_csv.keys() == by_json.keys() and by_csv
    for target, frame in by_csv.items():
        assert_frame_equal(frame, by_json[target])
        assert frame.height == sum(len(keys) for keys, _ in logged)


# JSON values as stored rows may hold them: text full of the separators' bytes, nested lists, objects.
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.sampled_from('],[{}"\\\nnul a'), max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(st.none() | st.lists(JSON_VALUES, min_size=1, max_size=4), min_size=1, max_size=5),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_each_view_gets_back_exactly_its_stored_rows(lookups, texts: bool) -> None:  # type: ignore[no-untyped-def]
    """Whatever a row holds (text full of commas, brackets and escapes, lists, objects), the spool
    gives each view back the rows it read, one per line, as the stored text."""
    view = ViewLookup("v", ["id"], ["int64"], ["a"], ["a"], None)
    stored = [[None if row is None else orjson.dumps(row) for row in rows] for rows in lookups]
    with tempfile.TemporaryDirectory() as tmp:
        log = ServedLog(Path(tmp), 1.0)
        for rows in stored:
            made = [rows_text(rows)] if texts else None
            log.record(
                None, LookupPlan([view], ["id"], ["a"]), {"id": list(range(len(rows)))}, [rows], [{"a": 1}], 0, made
            )
        with log._io_lock:
            log._spool_queue()
            log._seal()
        [path] = served_spool.sealed_files(Path(tmp))
        [(_, heads, [data])] = list(served_spool._chunks(path))
    assert len(heads) == len(lookups)
    assert data.split(b"\n") == [row or b"null" for rows in stored for row in rows]


def test_the_csv_path_takes_rows_csv_reads_alike_only() -> None:
    width, rows = served_spool._csv_width, served_spool._csv_rows
    assert width(b'null\n[1,2.5,true,"a,b",3]\n[4,null,false,"",5]', 3) == 5
    assert width(b"null\nnull", 2) is None  # nothing to parse: the JSON path
    assert width(b'[1,"a\\"b",3]', 1) is None  # an escape
    assert width(b'[1,"null",3]', 1) is None  # CSV would read a null
    assert rows(b"[1,2,3]\n[4,5]", 3, [1, 2]) is None  # short: its features are NOT_FOUND, not null
    assert rows(b"[1,2]\n[4,5,6]", 2, [1]) is None  # long
    assert rows(b"[1,[2,3],4]\n[5,[6,7],8]", 4, [1]) is None  # lists
    assert rows(b'[1,{"a":2},4]', 3, [1]) is None  # objects
    assert rows(b'[1,"[x",4]', 3, [1]) is None  # a text that looks like a list: the JSON path, to be sure
    assert rows(b"null\n[4,5,6]", 3, [1]) is not None


def _spooled(tmp: Path, rows: list[bytes | None], features: list[str]) -> ServedLog:
    view = ViewLookup("v", ["id"], ["int64"], features, features, None)
    log = ServedLog(tmp, 1.0)
    log.record(
        None,
        LookupPlan([view], ["id"], features),
        {"id": list(range(len(rows)))},
        [rows],
        [{f: j + 1 for j, f in enumerate(features)}],
    )
    return log


def test_numbers_and_plain_text_take_the_csv_path(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rows: list[bytes | None] = [orjson.dumps([NOW, i * 0.5, i, i % 2 == 0, None, f"é, {i}", NOW]) for i in range(1000)]
    log = _spooled(tmp_path, [*rows, None], ["a", "b", "c", "d", "e"])

    def no_json(*args: object) -> None:
        raise AssertionError("the JSON path parsed numeric rows")

    monkeypatch.setattr(served_spool, "_json_rows", no_json)
    assert log.flush() == 1001
    frame = pl.read_parquet(served_files(tmp_path, "v"))
    assert frame["v__a"].dtype == pl.Float64 and frame["v__b"].dtype == pl.Int64 and frame["v__c"].dtype == pl.Boolean
    assert frame["v__a"].to_list()[:3] == [0.0, 0.5, 1.0] and frame["v__c"].to_list()[:2] == [True, False]
    assert frame["v__d__status"].to_list()[:2] == ["NULL_VALUE", "NULL_VALUE"]
    assert frame["v__e"].to_list()[:2] == ["é, 0", "é, 1"]
    assert frame["v__a__status"].to_list()[-1] == "NOT_FOUND"  # the missing row


def test_escaped_text_and_list_values_take_the_json_path(tmp_path: Path) -> None:
    rows: list[bytes | None] = [
        orjson.dumps([NOW, 'a,b"]\n[c', [1, 2.5], 1.0, NOW]),
        None,
        orjson.dumps([NOW, "pl\\ain", [], 2.0, NOW]),
        orjson.dumps([NOW, "short", [3]]),  # a row shorter than the layout: c and d are not held
    ]
    log = _spooled(tmp_path, rows, ["a", "b", "c", "d"])
    assert log.flush() == 4
    frame = pl.read_parquet(served_files(tmp_path, "v"))
    assert frame["v__a"].to_list() == ['a,b"]\n[c', None, "pl\\ain", "short"]
    assert frame["v__b"].to_list() == ["[1,2.5]", None, "[]", "[3]"]
    assert frame["v__c"].to_list() == [1.0, None, 2.0, None]  # 1.0 stays a float
    assert frame["v__c__status"].to_list() == ["PRESENT", "NOT_FOUND", "PRESENT", "NOT_FOUND"]


def _numeric_lookup(log: ServedLog, n: int = 3) -> None:
    view = ViewLookup("v", ["id"], ["int64"], ["a"], ["a"], None)
    rows: list[bytes | None] = [orjson.dumps([NOW, float(i), NOW]) for i in range(n)]
    log.record(None, LookupPlan([view], ["id"], ["a"]), {"id": list(range(n))}, [rows], [{"a": 1}])


def _killed_after_spooling(log: ServedLog, *, seal: bool = False) -> None:
    """Start ``log``, log a 3-entity lookup, spool it (and seal its file), then stop the writer as a kill
    would: no close, so nothing is converted."""
    log.start()
    _numeric_lookup(log)
    with log._io_lock:
        log._spool_queue()
        if seal:
            log._seal()
    log._stop.set()


def test_a_memory_spool_is_linked_converted_and_released(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    shm = tmp_path / "shm"
    shm.mkdir()
    monkeypatch.setattr(served_spool, "SHM", shm)
    root = tmp_path / "offline"
    log = ServedLog(root, 1.0, spool_place=served_spool.SpoolPlace.MEMORY)
    log.start()
    link = spool_dir(root)
    [folder] = shm.glob("featurestore-*/*")
    assert link.is_symlink() and link.resolve() == folder.resolve()
    _numeric_lookup(log)
    with log._io_lock:
        log._spool_queue()
    assert [p.suffix for p in folder.iterdir()] == [".open"]  # the rows are in memory, not under the root
    log.close()
    assert pl.read_parquet(served_files(root, "v"))["v__a"].to_list() == [0.0, 1.0, 2.0]
    assert not folder.exists() and link.is_symlink()  # empty: released; the link is placed again at the start

    # After a reboot the folder is gone: the next server makes it again and logs as before.
    log = ServedLog(root, 1.0, spool_place=served_spool.SpoolPlace.MEMORY)
    log.start()
    assert folder.is_dir()
    _numeric_lookup(log, 2)
    log.close()
    assert sum(pl.read_parquet(f).height for f in served_files(root, "v")) == 5


def test_a_crashed_servers_memory_spool_is_converted_by_the_next(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(served_spool, "SHM", tmp_path)
    root = tmp_path / "offline"
    crashed = ServedLog(root, 1.0, spool_place=served_spool.SpoolPlace.MEMORY)
    _killed_after_spooling(crashed)  # the .open file stays in memory
    [spooled] = list(spool_dir(root).glob("*.open"))
    dead = spooled.with_name("spool-999999999-1-1.open")  # a pid that is gone
    spooled.replace(dead)
    crashed._open = {}
    assert served_spool.convert_spool(root) == 3  # what the next server's converter does
    assert pl.read_parquet(served_files(root, "v")).height == 3


def test_a_spool_holding_files_stays_where_it_is_until_converted(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(served_spool, "SHM", tmp_path / "shm")
    (tmp_path / "shm").mkdir()
    root = tmp_path / "offline"
    _killed_after_spooling(ServedLog(root, 1.0, spool_place=served_spool.SpoolPlace.DISK), seal=True)
    place = served_spool.place_spool
    assert place(root, served_spool.SpoolPlace.MEMORY) == spool_dir(root)  # sealed files wait on disk
    assert not spool_dir(root).is_symlink()
    assert served_spool.convert_spool(root) == 3
    assert place(root, served_spool.SpoolPlace.MEMORY) != spool_dir(root) and spool_dir(root).is_symlink()
    assert place(root, served_spool.SpoolPlace.DISK) == spool_dir(root) and not spool_dir(root).is_symlink()


def test_lookups_across_chunk_boundaries_convert_once(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A spool file read in blocks smaller than a lookup (and than a row) converts every row once, in order."""
    features = ["a", "b"]
    views = [ViewLookup(name, ["id"], ["int64"], features, features, None) for name in ("v", "w")]
    plan = LookupPlan(views, ["id"], [f"{v.name}__{f}" for v in views for f in features])
    layouts = [{"a": 1, "b": 2}, {"a": 1, "b": 2}]
    log = ServedLog(tmp_path, 1.0)
    ids = 0
    for n in (1, 7, 3, 12, 1):
        keys = list(range(ids, ids + n))
        rows = [[orjson.dumps([NOW, k * 0.5 + v, f"t{k}", NOW]) if k % 5 else None for k in keys] for v in (0, 1)]
        log.record(None, plan, {"id": keys}, rows, layouts)
        ids += n
    with log._io_lock:
        log._spool_queue()
        log._seal()
    monkeypatch.setattr(served_spool, "CHUNK_BYTES", 37)  # shorter than most rows
    assert served_spool.convert_spool(tmp_path) == 2 * ids  # each view is a target: an entity row for each
    for v, name in enumerate(("v", "w")):
        files = served_files(tmp_path, name)
        assert len(files) >= 5  # a chunk per lookup, the first of them all null in a column
        # Read as skew reads them: a column all null in a file takes the other files' type.
        frame = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed").sort("id")
        assert frame.schema[f"{name}__a"] == pl.Float64
        assert frame["id"].to_list() == list(range(ids))
        assert frame[f"{name}__a"].to_list() == [k * 0.5 + v if k % 5 else None for k in range(ids)]
        assert frame[f"{name}__b"].to_list() == [f"t{k}" if k % 5 else None for k in range(ids)]


def test_a_value_the_first_rows_type_does_not_fit_is_read_as_text_then_typed(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The CSV reader types a column from its first rows; integers followed by a float fail that read, and
    the column is then read as text and typed as a whole (floats), as the JSON path does."""
    monkeypatch.setattr(served_spool, "INFER_ROWS", 2)
    rows: list[bytes | None] = [orjson.dumps([NOW, v, NOW]) for v in (1, 2, 3, 4.5)]
    log = _spooled(tmp_path, rows, ["a"])
    with log._io_lock:
        log._spool_queue()
        log._seal()
    by_csv, by_json = _converted(spool_dir(tmp_path), True), _converted(spool_dir(tmp_path), False)
    assert by_csv["v"]["v__a"].to_list() == [1.0, 2.0, 3.0, 4.5] and by_csv["v"]["v__a"].dtype == pl.Float64
    assert_frame_equal(by_csv["v"], by_json["v"])
