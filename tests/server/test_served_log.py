"""Served-feature logging and `featurestore skew`: unit tests, and a real server under load with logging at 1.0."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from pathlib import Path

import httpx
import orjson
import polars as pl
import pytest
from typer.testing import CliRunner

from featurestore import FeatureStore
from featurestore.cli.main import app as cli
from featurestore.online.codec import now_us
from featurestore.server.served_log import ServedLog, served_dir, served_files, spool_dir, status_column, value_column
from featurestore.server.served_spool import convert_spool
from featurestore.serving.lookup import assemble, plan_lookup, rows_text
from featurestore.skew import SkewError, compute_skew
from featurestore.validation import list_reports
from tests.server.conftest import ADMIN_KEY, start_server, stop_server
from tests.server.example_repo import SCOPED_SERVICE


def _record(log: ServedLog, service: str | None, plan, n: int) -> None:  # type: ignore[no-untyped-def]
    """What the route does: hand over the checked entities and the stored rows it read, with their layouts.

    ``plan`` asks weather's temp and wind_speed; the rows hold temp only (wind_speed answers NOT_FOUND).
    """
    entities, rows = _lookup(n)
    log.record(service, plan, entities, [rows], [{"temp": 1}], None, [rows_text(rows)])


def _lookup(n: int, stamp: int | None = None) -> tuple[dict, list]:
    origins = ["JFK", "LGA", "EWR"] * n
    stamp = now_us() if stamp is None else stamp
    return {"origin": origins[:n]}, [orjson.dumps([stamp, 50.0 + i, 0]) for i in range(n)]


def test_log_is_bounded_and_written_as_parquet_per_target(example_repo: Path, tmp_path: Path) -> None:
    state = FeatureStore(example_repo).state()
    plan = plan_lookup(state, ["weather:temp", "weather:wind_speed"])
    entities, rows = _lookup(3)
    size = len(orjson.dumps(list(entities.values()))) + len(b"\n".join(rows)) + 1  # one lookup's rows and keys
    log = ServedLog(tmp_path, 1.0, max_bytes=int(3.5 * size))
    for _ in range(5):
        _record(log, None, plan, 3)  # 3 fit (9 rows), 2 are dropped: the request never waits
    assert log.queued_bytes >= 3 * size
    assert log.dropped == 6
    assert log.flush() == 9
    files = served_files(tmp_path, "weather")
    assert len(files) == 1 and not list(files[0].parent.glob(".*"))  # no temporary file left
    frame = pl.read_parquet(files[0])
    assert frame.columns == [
        "request_time",
        "origin",
        value_column("weather", "temp"),
        status_column("weather", "temp"),
        value_column("weather", "wind_speed"),
        status_column("weather", "wind_speed"),
    ]
    assert frame.height == 9 and frame["weather__temp"].to_list()[:3] == [50.0, 51.0, 52.0]
    assert frame["weather__wind_speed__status"].unique().to_list() == ["NOT_FOUND"]
    assert frame["request_time"].dtype == pl.Datetime("us", "UTC")
    _record(log, "svc", plan, 2)  # a service logs every feature under its own name
    log.close()
    assert pl.read_parquet(served_files(tmp_path, "svc")).height == 2


def test_large_lookups_are_spooled_as_the_stored_rows_they_read(example_repo: Path, tmp_path: Path) -> None:
    plan = plan_lookup(FeatureStore(example_repo).state(), ["weather:temp", "weather:wind_speed"])
    log = ServedLog(tmp_path, 1.0)
    entities, rows = _lookup(2000)
    log.record(None, plan, entities, [rows], [{"temp": 1}])
    with log._io_lock:
        log._spool_queue()
    [spooled] = list(spool_dir(tmp_path).glob("spool-*.open"))
    desc, head, *lines = spooled.read_bytes().splitlines()
    # The rows as Redis returned them, one per line (with the commas the assembly joined them with), not
    # the response (no statuses, no event times per feature).
    assert lines == [row + b"," for row in rows[:-1]] + rows[-1:] and orjson.loads(head)["n"] == 2000
    assert b"PRESENT" not in spooled.read_bytes() and b"event_timestamps" not in spooled.read_bytes()
    assert orjson.loads(desc)["v"] == [["weather", ["temp", "wind_speed"], ["origin"], plan.views[0].ttl_us, [1, None]]]
    assert log.flush() == 2000
    frame = pl.read_parquet(served_files(tmp_path, "weather"))
    assert frame["weather__temp"].to_list() == [50.0 + i for i in range(2000)]
    assert frame["origin"].to_list()[:4] == ["JFK", "LGA", "EWR", "JFK"]
    assert not list(spool_dir(tmp_path).glob("spool-*"))  # converted files are gone


def test_statuses_are_recomputed_as_the_lookup_answered(example_repo: Path, tmp_path: Path) -> None:
    """Missing rows, rows past the ttl, features a row does not hold and null values, as /get-online-features."""
    store = FeatureStore(example_repo)
    state = store.state()
    plan = plan_lookup(state, ["weather:temp", "weather:wind_speed", "weather:precip"])
    ttl = plan.views[0].ttl_us
    assert ttl is not None
    now = now_us()
    rows = [
        orjson.dumps([now, 51.5, None, 0]),  # present, a null value; precip's position is past the row
        None,  # not found
        orjson.dumps([now - ttl - 1_000_000, 52.0, 3.0, 0]),  # older than the ttl
    ]
    entities = {"origin": ["JFK", "XXX", "LGA"]}
    log = ServedLog(tmp_path, 1.0)
    log.record(None, plan, entities, [rows], [{"temp": 1, "wind_speed": 2, "precip": 4}])
    log.record(None, plan, entities, [[None] * 3], [{}])  # a view never materialized: no version, no layout
    assert log.flush() == 6
    layout = {"temp": 1, "wind_speed": 2, "precip": 4}
    first, second = (pl.read_parquet(f) for f in served_files(tmp_path, "weather"))  # two kinds of lookup
    expected = lookup_response(plan, entities, rows, layout)
    got = first if first["weather__temp"].dtype == pl.Float64 else second
    never = second if got is first else first
    for feature in ("temp", "wind_speed", "precip"):
        assert got[f"weather__{feature}"].to_list() == expected[feature]["values"], feature
        assert got[f"weather__{feature}__status"].to_list() == expected[feature]["statuses"], feature
    assert got["weather__temp__status"].to_list() == ["PRESENT", "NOT_FOUND", "OUTSIDE_MAX_AGE"]
    assert got["weather__wind_speed__status"].to_list() == ["NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE"]
    assert got["weather__precip__status"].to_list() == ["NOT_FOUND", "NOT_FOUND", "OUTSIDE_MAX_AGE"]
    assert never["weather__temp__status"].to_list() == ["NOT_FOUND"] * 3
    assert got["origin"].to_list() == never["origin"].to_list() == ["JFK", "XXX", "LGA"]


def test_statuses_are_judged_at_the_time_the_lookup_judged_them(example_repo: Path, tmp_path: Path) -> None:
    """The log keeps the lookup's own request time (``t_us``), not the time it was recorded or spooled: a row
    inside the ttl when it was served is logged PRESENT even if it has aged past the ttl since."""
    plan = plan_lookup(FeatureStore(example_repo).state(), ["weather:temp"])
    ttl = plan.views[0].ttl_us
    assert ttl is not None
    served_at = now_us() - 60_000_000  # the lookup ran a minute ago
    rows = [orjson.dumps([served_at - ttl + 1_000_000, 50.0, 0]), orjson.dumps([served_at - ttl - 1, 51.0, 0])]
    log = ServedLog(tmp_path, 1.0)
    log.record(None, plan, {"origin": ["JFK", "LGA"]}, [rows], [{"temp": 1}], served_at)
    assert log.flush() == 2
    [file] = served_files(tmp_path, "weather")
    got = pl.read_parquet(file)
    assert got["weather__temp__status"].to_list() == ["PRESENT", "OUTSIDE_MAX_AGE"]
    assert got["weather__temp"].to_list() == [50.0, None]
    assert got["request_time"].dt.epoch("us").to_list() == [served_at] * 2
    expected = lookup_response(plan, {"origin": ["JFK", "LGA"]}, rows, {"temp": 1}, served_at)
    assert got["weather__temp__status"].to_list() == expected["temp"]["statuses"]


def test_a_lookup_that_cannot_be_serialized_is_counted_and_the_others_are_logged(
    example_repo: Path, tmp_path: Path
) -> None:
    """Serializing happens in the flush: a bad lookup there (a caller's bug) costs only its own rows."""
    plan = plan_lookup(FeatureStore(example_repo).state(), ["weather:temp"])
    log = ServedLog(tmp_path, 1.0)
    good, rows = _lookup(2)
    log.record(None, plan, {"origin": [object(), "LGA"]}, [rows], [{"temp": 1}])  # orjson cannot write it
    log.record(None, plan, good, [rows], [{"temp": 1}])
    log.record(None, plan, good, [["not bytes", None]], [{"temp": 1}])  # rows not bytes
    assert log.flush() == 2
    assert log.dropped == 4 and log.spooled == 2
    [file] = served_files(tmp_path, "weather")
    assert pl.read_parquet(file)["origin"].to_list() == ["JFK", "LGA"]


def test_the_rows_are_not_kept_when_the_assembly_joined_them(example_repo: Path, tmp_path: Path) -> None:
    """The route hands over the text the assembly decoded: the log keeps it, the rows go with the request."""
    import weakref

    class Rows(list):  # type: ignore[type-arg]
        pass

    plan = plan_lookup(FeatureStore(example_repo).state(), ["weather:temp"])
    log = ServedLog(tmp_path, 1.0)
    entities, stored = _lookup(3)
    rows, missing = Rows(stored), Rows([stored[0], None])
    gone, kept = weakref.ref(rows), weakref.ref(missing)
    log.record(None, plan, entities, [rows], [{"temp": 1}], None, [rows_text(rows)])
    log.record(None, plan, {"origin": ["JFK", "EWR"]}, [missing], [{"temp": 1}], None, [rows_text(missing)])
    del rows, missing
    assert gone() is None  # joined by the assembly: not kept
    assert kept() is not None  # a row missing: no text, the rows are kept and joined by the flush
    assert log.flush() == 5
    frame = pl.read_parquet(served_files(tmp_path, "weather"))
    assert frame["weather__temp"].to_list() == [50.0, 51.0, 52.0, 50.0, None]
    assert frame["weather__temp__status"].to_list()[-2:] == ["PRESENT", "NOT_FOUND"]


def lookup_response(plan, entities, rows, layout, t_us=None):  # type: ignore[no-untyped-def]
    """The statuses and values the server's assembly answers for these rows (the rule the converter repeats)."""
    response = assemble(plan, entities, len(rows), [rows], [layout], t_us)
    names = response["metadata"]["feature_names"]
    return dict(zip(names, response["results"], strict=True))


def test_a_crashed_servers_spool_is_converted_once_without_its_torn_line(example_repo: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    plan = plan_lookup(FeatureStore(example_repo).state(), ["weather:temp", "weather:wind_speed"])
    log = ServedLog(tmp_path, 1.0)
    for _ in range(3):
        _record(log, None, plan, 2)
    with log._io_lock:
        log._spool_queue()
    [spooled] = list(spool_dir(tmp_path).glob("spool-*.open"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    crashed = spooled.with_name(f"spool-{dead.stdout.strip()}-1-1.open")  # a server that is gone
    crashed.write_bytes(spooled.read_bytes() + b'{"n":2,"t":17,"k":[["JFK","LGA"]]}\n[1,2')  # killed mid-write
    spooled.unlink()
    log._open = {}
    copy = crashed.read_bytes()
    assert convert_spool(tmp_path) == 6
    # A converter killed before deleting the file converts it again into the same Parquet names.
    crashed.write_bytes(copy)
    assert convert_spool(tmp_path) == 6
    assert pl.read_parquet(served_files(tmp_path, "weather")).height == 6

    # A server that starts over a spool left behind converts it at its first lull, in the background.
    crashed.write_bytes(copy)
    restarted = ServedLog(tmp_path, 1.0, flush_seconds=0.05, quiet_seconds=0.1)
    restarted.start()
    try:
        deadline = time.monotonic() + 120  # a wait for an outcome, not a timing assertion
        while crashed.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not crashed.exists() and restarted._converter is not None
    finally:
        restarted.close()
    assert pl.read_parquet(served_files(tmp_path, "weather")).height == 6


def test_the_background_converter_writes_parquet_duckdb_reads(example_repo: Path, tmp_path: Path) -> None:
    import duckdb

    plan = plan_lookup(FeatureStore(example_repo).state(), ["weather:temp", "weather:wind_speed"])
    log = ServedLog(tmp_path, 1.0, flush_seconds=0.05, seal_seconds=0.2, quiet_seconds=0.2)
    log.start()
    try:
        for _ in range(10):
            _record(log, None, plan, 3)
            _record(log, SCOPED_SERVICE, plan, 1)
        deadline = time.monotonic() + 120  # a wait for an outcome, not a timing assertion
        while time.monotonic() < deadline and (
            len(served_files(tmp_path, "weather")) == 0 or list(spool_dir(tmp_path).glob("spool-*"))
        ):
            time.sleep(0.1)
        assert log._converter is not None  # a child process converted, not this one
        assert log.logged == 0
    finally:
        log.close()
    root = served_dir(tmp_path)
    [(count, days)] = duckdb.sql(
        f"SELECT count(*), count(DISTINCT date) FROM read_parquet('{root}/weather/date=*/*.parquet', "
        "hive_partitioning = true)"
    ).fetchall()
    assert (count, days) == (30, 1)
    temp = duckdb.sql(f"SELECT sum(weather__temp) FROM read_parquet('{root}/{SCOPED_SERVICE}/*/*.parquet')")
    assert temp.fetchall() == [(10 * 50.0,)]


def test_sampling_keeps_about_the_configured_share(tmp_path: Path, example_repo: Path) -> None:
    plan = plan_lookup(FeatureStore(example_repo).state(), ["weather:temp", "weather:wind_speed"])
    log = ServedLog(tmp_path, 0.1)
    for _ in range(2000):
        _record(log, None, plan, 1)
    log.close()
    rows = pl.read_parquet(served_files(tmp_path, "weather")).height
    assert 100 < rows < 300  # 10 % of 2,000, with a wide margin (no timing, only counting)


def test_log_under_load_loses_nothing_on_a_clean_shutdown_and_skew_reads_it(example_repo: Path) -> None:
    before = sum(pl.read_parquet(f).height for f in served_files(example_repo / "data/offline", SCOPED_SERVICE))
    server = start_server(example_repo)
    body = {"feature_service": SCOPED_SERVICE, "entities": {"origin": ["JFK", "LGA", "XXX"]}}
    headers = {"X-API-Key": ADMIN_KEY}

    def hammer(_: int) -> int:
        with httpx.Client(base_url=server.url, headers=headers) as client:
            for _ in range(50):
                r = client.post("/get-online-features", json=body)
                assert r.status_code == 200, r.text
        return 50

    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            sent = sum(pool.map(hammer, range(8)))
    finally:
        stop_server(server)  # SIGTERM: the lifespan shutdown writes what is still queued
    files = served_files(example_repo / "data/offline", SCOPED_SERVICE)
    logged = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    assert logged.height - before == sent * 3
    assert set(logged["origin"].unique()) >= {"JFK", "LGA", "XXX"}
    statuses = logged["weather__temp__status"].value_counts().rows()
    assert dict(statuses)["NOT_FOUND"] >= sent  # the unknown airport, one per lookup

    settings = FeatureStore(example_repo).settings
    state = FeatureStore(example_repo).state()
    [report] = compute_skew(settings, state, SCOPED_SERVICE, threshold=0.0001)
    skew = report["skew"]
    assert report["path"] == "skew" and report["target"] == SCOPED_SERVICE and report["view"] == "weather"
    assert skew["training_set"] and skew["training_set"].endswith("delay_model.parquet.manifest.json")
    by_feature = {f["feature"]: f for f in skew["features"]}
    assert set(by_feature) == {"temp", "wind_speed"}
    temp = by_feature["temp"]
    assert temp["psi_training"] is not None and temp["psi_training"] > 0.0001  # a few live values vs January
    assert temp["psi_profile"] is not None  # the weather baseline stored by `profile`
    assert temp["not_found"] == pytest.approx(1 / 3, abs=0.05)
    assert temp["null_served"] >= temp["not_found"]
    assert report["status"] == "warned" and "temp: skew(psi>0.0001)" in report["failures"]
    # the failed check joins the report history, and the UI and /metrics read it
    newest = list_reports(settings.offline_root, "weather", limit=1)[0]
    assert newest["run_id"] == report["run_id"]


def test_skew_command_and_metrics(example_repo: Path, example_server) -> None:  # type: ignore[no-untyped-def]
    store = FeatureStore(example_repo)
    log = ServedLog(store.settings.offline_root, 1.0)  # a few served lookups, whatever ran before
    _record(log, SCOPED_SERVICE, plan_lookup(store.state(), SCOPED_SERVICE), 3)
    log.close()
    runner = CliRunner()
    result = runner.invoke(cli, ["skew", SCOPED_SERVICE, "--repo", str(example_repo)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"{SCOPED_SERVICE} / weather" in result.output and "PSI vs training" in result.output
    missing = runner.invoke(cli, ["skew", "no_such_service", "--repo", str(example_repo)])
    assert missing.exit_code == 1 and "no served-feature log for 'no_such_service'" in missing.output
    with pytest.raises(SkewError):
        compute_skew(FeatureStore(example_repo).settings, FeatureStore(example_repo).state(), "nothing")
    metrics = httpx.get(example_server.url + "/metrics").text
    assert "featurestore_served_log_dropped_rows_total 0.0" in metrics  # the queue never filled up
    assert "featurestore_served_log_spooled_rows_total" in metrics
    assert f'featurestore_skew_psi{{against="training",feature="temp",target="{SCOPED_SERVICE}",view="weather"}}' in (
        metrics
    )
    ui = httpx.get(
        example_server.url + f"/ui/api/skew?target={SCOPED_SERVICE}", headers={"X-API-Key": ADMIN_KEY}
    ).json()
    assert ui and ui[0]["skew"]["features"]


def test_recording_a_lookup_costs_the_same_python_calls_whatever_its_size(example_repo: Path, tmp_path: Path) -> None:
    """The request path's share (``record``) and the writer's share (``_spool_queue``) make as many Python-level
    calls for 1,000 entities as for one: the per-entity work is C code (a join, orjson, writev)."""
    import cProfile
    import pstats

    plan = plan_lookup(FeatureStore(example_repo).state(), ["weather:temp", "weather:wind_speed"])
    log = ServedLog(tmp_path, 1.0)
    layouts = [{"temp": 1}]  # the server's cached layout: one object per view version
    calls = {}
    for n in (1, 1000):
        entities, rows = _lookup(n)
        log.record(None, plan, entities, [rows], layouts)  # the descriptor is built once per kind of lookup
        with log._io_lock:
            log._spool_queue()
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(10):
            log.record(None, plan, entities, [rows], layouts)
        with log._io_lock:
            log._spool_queue()
        profile.disable()
        calls[n] = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
    assert calls[1] == calls[1000]
    log.close()


def _spooled_lookups(root: Path) -> int:
    """Lookups in the spool files (their header lines), sealed or open."""
    return sum(
        sum(1 for line in path.read_bytes().splitlines() if line.startswith(b'{"n":'))
        for path in spool_dir(root).glob("spool-*")
    )


def test_on_a_server_the_event_loop_spools_once_the_responses_are_out(example_repo: Path, tmp_path: Path) -> None:
    """Started on an event loop, the log spools from the loop a few milliseconds after a lookup: the writer
    thread (here asleep for minutes) is not needed, and what is spooled converts as before."""
    plan = plan_lookup(FeatureStore(example_repo).state(), ["weather:temp", "weather:wind_speed"])
    log = ServedLog(tmp_path, 1.0, flush_seconds=60.0, loop_flush_seconds=0.001)

    async def serve() -> tuple[int, int]:
        log.start()
        for _ in range(5):
            _record(log, None, plan, 3)
        before = _spooled_lookups(tmp_path)  # nothing yet: the request path only queues
        await asyncio.sleep(0.05)
        return before, _spooled_lookups(tmp_path)

    before, after = asyncio.run(serve())
    assert (before, after) == (0, 5)
    assert log.spooled == 15 and log.queued_bytes == 0
    log.close()
    assert pl.read_parquet(served_files(tmp_path, "weather")).height == 15


def test_a_slow_spool_moves_the_spooling_off_the_loop_and_loses_nothing(
    example_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A disk that stalls a write (a fault, made by slowing the append) hands the spooling to the writer
    thread: the loop stops writing, the thread spools the next lookups, and every lookup is converted."""
    from featurestore.server import served_log

    plan = plan_lookup(FeatureStore(example_repo).state(), ["weather:temp", "weather:wind_speed"])
    append = served_log.append_lines
    loop_writes: list[float] = []

    def stalled(fd: int, parts: list) -> None:  # type: ignore[type-arg]
        on_loop = threading.current_thread() is threading.main_thread()
        if on_loop:
            loop_writes.append(time.monotonic())
            time.sleep(served_log.STALL_SECONDS + 0.01)
        append(fd, parts)

    monkeypatch.setattr(served_log, "append_lines", stalled)
    log = ServedLog(tmp_path, 1.0, flush_seconds=0.01, loop_flush_seconds=0.001)

    async def serve() -> None:
        log.start()
        _record(log, None, plan, 2)
        await asyncio.sleep(0.1)  # the loop writes once, slowly: the thread takes over
        for _ in range(10):
            _record(log, None, plan, 2)
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)

    with caplog.at_level("WARNING", logger="featurestore.served_log"):
        asyncio.run(serve())
    assert len(loop_writes) == 1  # one stalled write on the loop, none after
    assert "the writer thread spools for the next" in caplog.text
    assert _spooled_lookups(tmp_path) == 11  # the thread spooled the rest while the loop went on
    log.close()
    assert pl.read_parquet(served_files(tmp_path, "weather")).height == 22


@pytest.mark.skipif(not Path("/proc/thread-self/schedstat").exists(), reason="needs Linux's schedstat")
def test_a_spool_write_slow_on_the_cpu_is_not_taken_for_a_slow_disk(
    example_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Only the time a write is blocked counts as a slow disk: a write that takes long because its thread
    runs (here it spins; on a busy machine it is preempted and waits for a core) keeps the spooling on
    the loop, where it costs least."""
    from featurestore.server import served_log

    plan = plan_lookup(FeatureStore(example_repo).state(), ["weather:temp", "weather:wind_speed"])
    append = served_log.append_lines
    loop_writes: list[float] = []

    def busy(fd: int, parts: list) -> None:  # type: ignore[type-arg]
        if threading.current_thread() is threading.main_thread():
            loop_writes.append(time.monotonic())
            deadline = time.perf_counter() + served_log.STALL_SECONDS + 0.01
            while time.perf_counter() < deadline:  # on the CPU, not blocked
                pass
        append(fd, parts)

    monkeypatch.setattr(served_log, "append_lines", busy)
    log = ServedLog(tmp_path, 1.0, flush_seconds=0.01, loop_flush_seconds=0.001)

    async def serve() -> None:
        log.start()
        for _ in range(4):
            _record(log, None, plan, 2)
            await asyncio.sleep(0.1)

    with caplog.at_level("WARNING", logger="featurestore.served_log"):
        asyncio.run(serve())
    assert len(loop_writes) == 4  # every write stayed on the loop
    assert "the writer thread spools" not in caplog.text
    log.close()
    assert pl.read_parquet(served_files(tmp_path, "weather")).height == 8


def test_a_spool_past_its_bound_drops_lookups_until_converted(example_repo: Path, tmp_path: Path) -> None:
    """``served_spool_max_bytes`` bounds the spool on disk: past it lookups are counted as dropped (the
    request never waits), and once the converter has emptied the spool they are logged again."""
    plan = plan_lookup(FeatureStore(example_repo).state(), ["weather:temp", "weather:wind_speed"])
    log = ServedLog(tmp_path, 1.0, max_spool_bytes=2048, flush_seconds=0.01, seal_seconds=3600, quiet_seconds=3600)
    log.start()
    _record(log, None, plan, 40)  # ~1.5 KB of rows with the header lines: under the bound
    _record(log, None, plan, 40)  # past it once spooled
    deadline = time.monotonic() + 5
    while not log._spool_full and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log._spool_full
    for _ in range(3):
        _record(log, None, plan, 10)
    assert log.dropped == 30 and log.spooled == 80
    assert _spooled_lookups(tmp_path) == 2  # nothing more was written
    assert log.flush() == 80  # the converter empties the spool ...
    deadline = time.monotonic() + 5
    while log._spool_full and time.monotonic() < deadline:
        time.sleep(0.01)
    _record(log, None, plan, 5)  # ... and lookups are logged again
    log.close()
    assert log.dropped == 30
    assert pl.read_parquet(served_files(tmp_path, "weather")).height == 85


def test_the_converter_runs_at_idle_priority() -> None:
    """The converter process asks for Linux's SCHED_IDLE (only CPU nobody else wants), polars' threads too."""
    import subprocess
    import sys

    code = (
        "import os, threading\n"
        "from featurestore.server.served_spool import idle_priority\n"
        "print(idle_priority())\n"
        "seen = []\n"
        "t = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0) == os.SCHED_IDLE))\n"
        "t.start(); t.join(); print(seen[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["SCHED_IDLE", "True"]


def test_without_a_lull_the_converter_starts_at_half_the_spool_bound(example_repo: Path, tmp_path: Path) -> None:
    """Lookups logged without pause (no lull) are converted once the sealed spool passes half of
    ``max_spool_bytes``, by the idle-priority converter process, while logging goes on."""
    plan = plan_lookup(FeatureStore(example_repo).state(), ["weather:temp", "weather:wind_speed"])
    log = ServedLog(tmp_path, 1.0, max_spool_bytes=8192, flush_seconds=0.01, seal_seconds=0.05, quiet_seconds=3600)
    assert log.convert_bytes == 4096
    log.start()
    deadline = time.monotonic() + 60
    while not served_files(tmp_path, "weather") and time.monotonic() < deadline:
        _record(log, None, plan, 5)  # ~200 bytes spooled each
        time.sleep(0.01)
    assert served_files(tmp_path, "weather"), "the converter did not start without a lull"
    log.close()
    frame = pl.concat([pl.read_parquet(f) for f in served_files(tmp_path, "weather")], how="diagonal_relaxed")
    assert frame.height == log.spooled  # every spooled row converted (a bound this small also drops some)
