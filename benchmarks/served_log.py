"""Benchmark: lookup throughput with served-feature logging at 1.0 against logging off (W1 in Redis, wrk).

Run: python -m benchmarks.served_log [--quick] [--duration SECONDS] [--repeat N] [--spool memory|disk]
Three one-worker servers over the same Redis, one with FEATURESTORE_LOG_SAMPLE_RATE=1.0 (its spool
where ``--spool`` says, default the server's default, disk), two without, all pinned to one core
(wrk and Redis to the others) and loaded at the same time: wrk drives /get-online-features on each
with 1 and 100 random entities x 20 features at concurrency 16. Sharing the core fairly, the servers'
req/s differ only by the CPU each spends per lookup, and the machine's swings (10-30 % from one
second to the next on a shared host) move all three alike. Each run starts three new servers with
one hash seed, a different one per run (a process's own luck moved its req/s by up to 14 %). The
drop is the median of the runs' drops against the mean of the two others, with their quartiles,
and the A/A figure (the two unlogged servers against each other) shows the noise left.
Also the CPU time each server (with its converter processes) spent per lookup, the same way, and
what the log wrote (after a clean shutdown, which converts the rest of the spool).
Then, in this process, the logging's own cost per lookup: the CPU of ``record`` plus the spooling
(in passes of as many lookups as the server's loop flushes at once, every 10 ms: 80 of 1 entity, 20
of 100) with the spool on disk and in memory, the bytes spooled, and the converter's CPU per lookup (its
CSV path, which W1's numeric rows take, and its JSON path, for text and list values).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from benchmarks.materialize import prepare, redis_server
from benchmarks.online_http import _free_port, _start, _stop, _wrk
from benchmarks.w1 import FEATURES

__all__ = ["main", "measure"]


def _cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its children, finished (reaped) or running."""
    ticks = os.sysconf("SC_CLK_TCK")

    def own(p: int, with_reaped: bool) -> float:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        # utime, stime, cutime, cstime are fields 14-17 (11-14 after the name)
        return sum(int(f) for f in fields[11 : 15 if with_reaped else 13]) / ticks

    total = own(pid, True)
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            total += own(int(child), False)
    return total


def _cores() -> tuple[set[int] | None, set[int] | None]:
    """The core the servers share and the cores left to wrk and Redis (None, None on one core)."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) < 2:
        return None, None
    return {cores[-1]}, set(cores[:-1])


def _core_busy() -> dict[int, tuple[int, int]]:
    """Per core: (busy, total) clock ticks so far, from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(f) for f in fields]
            out[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))
    return out


def measure(scale: float, seconds: float, repeat: int, spool: str | None = None) -> dict[str, Any]:
    """Three servers sharing one core, loaded at once: req/s and CPU microseconds per lookup, medians."""
    ids = int(100_000 * scale)
    server_core, load_cores = _cores()
    own = os.sched_getaffinity(0) if server_core else None
    if load_cores:
        os.sched_setaffinity(0, load_cores)  # Redis, and later wrk, run on the other cores
    try:
        with redis_server() as url:
            return _measure(url, scale, ids, seconds, repeat, spool, server_core)
    finally:
        if own:
            os.sched_setaffinity(0, own)


def _measure(
    url: str, scale: float, ids: int, seconds: float, repeat: int, spool: str | None, server_core: set[int] | None
) -> dict[str, Any]:
    from featurestore import FeatureStore

    root = prepare(scale, url)
    store = FeatureStore(root)
    store.materialize(["driver_stats"])
    served = store.settings.offline_root / "_served"
    shutil.rmtree(served, ignore_errors=True)
    # Two servers that do not log and one that logs everything, all on the same core and loaded at
    # the same time: each gets a fair share of that core, so their req/s differ only by the CPU each
    # spends per lookup, and the machine's own swings (10-30 % from one second to the next on a
    # shared host, more than the logging costs) move all three alike. A process has its own luck
    # too: two identical servers started with different hash seeds differed by up to 14 % (dict
    # layouts, the interpreter's hot paths), and by 8 % at 1 entity in a whole run when kept for all
    # of it. So each run starts three new servers sharing one seed, a different one per run. The two
    # that do not log, against each other, give the noise left (A/A).
    names = ("off", "1.0", "off2")
    rps: dict[tuple[int, str], list[float]] = {}
    cpu: dict[tuple[int, str], list[float]] = {}
    busy: list[float] = []
    for run in range(repeat):
        servers, ports = _start_servers(root, names, spool, server_core, seed=run + 1)
        try:
            for entities in (1, 100):
                _load(ports, entities, ids, 1.0, warm_up=True)
                before = {name: _cpu_seconds(servers[name].pid) for name in names}
                ticks = _core_busy()
                got = _load(ports, entities, ids, seconds)
                if server_core:
                    (core,) = server_core
                    (b0, t0), (b1, t1) = ticks[core], _core_busy()[core]
                    busy.append((b1 - b0) / max(t1 - t0, 1))
                for name in names:
                    used = _cpu_seconds(servers[name].pid) - before[name]
                    rps.setdefault((entities, name), []).append(got[name]["rps"])
                    cpu.setdefault((entities, name), []).append(1e6 * used / (got[name]["rps"] * seconds))
        finally:
            _stop(servers["off"])
            _stop(servers["off2"])
            # A clean shutdown: the logging server converts what its spool still holds (given time to).
            servers["1.0"].terminate()
            servers["1.0"].wait(300)
    files = list(served.glob("*/date=*/part-*.parquet"))
    rows = sum(pl.scan_parquet(f).select(pl.len()).collect().item() for f in files)
    shapes = {}
    for entities in (1, 100):
        # Per run: the logging server against the mean of the two others, and the two others against
        # each other; the medians of the runs' ratios are the figures (the quartiles show the spread).
        off, on, off2 = (rps[(entities, k)] for k in names)
        c_off, c_on, c_off2 = (cpu[(entities, k)] for k in names)
        drops = [1 - b / ((a + c) / 2) for a, b, c in zip(off, on, off2, strict=True)]
        extras = [b / ((a + c) / 2) - 1 for a, b, c in zip(c_off, c_on, c_off2, strict=True)]
        noise = [1 - c / a for a, c in zip(off, off2, strict=True)]
        shapes[entities] = {
            "rps_off": statistics.median(off + off2),
            "rps_logged": statistics.median(on),
            "drop": statistics.median(drops),
            "drop_quartiles": _quartiles(drops),
            "aa_drop": statistics.median(noise),
            "aa_drop_quartiles": _quartiles(noise),
            "cpu_us_off": statistics.median(c_off + c_off2),
            "cpu_us_logged": statistics.median(c_on),
            "cpu_extra": statistics.median(extras),
            "cpu_extra_quartiles": _quartiles(extras),
            "rounds": repeat,
        }
    return {
        "shapes": shapes,
        "seconds_per_run": seconds,
        "spool": spool or "disk (the default)",
        "server_core": sorted(server_core) if server_core else None,
        "server_core_busy": statistics.median(busy) if busy else None,
        "logged_rows": rows,
        "parquet_files": len(files),
        "spool_files_left": len(list((served / ".spool").glob("spool-*"))),
        "served_dir": str(served),
        "spool_cost": spool_cost(),
    }


def _start_servers(
    root: Path, names: tuple[str, ...], spool: str | None, core: set[int] | None, seed: int
) -> tuple[dict[str, subprocess.Popen[bytes]], dict[str, int]]:
    """One-worker servers on ``core``, ``"1.0"`` logging every lookup, all with the hash seed ``seed``."""
    ports = {name: _free_port() for name in names}
    servers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, port in ports.items():
            env = {"PYTHONHASHSEED": str(seed), "FEATURESTORE_LOG_SAMPLE_RATE": "1.0" if name == "1.0" else "0"}
            if spool is not None:
                env["FEATURESTORE_SERVED_SPOOL"] = spool
            servers[name] = _start(
                ["-m", "featurestore.cli.main", "serve", "--repo", str(root), "--port", str(port)],
                port,
                env,
                preexec_fn=(lambda: os.sched_setaffinity(0, core)) if core else None,
                # A session each: with Linux's autogroups the core is shared fairly between the servers,
                # not between their threads (the logging one has a writer thread besides its loop).
                start_new_session=True,
            )
            _first_lookup(port)
    except BaseException:
        for server in servers.values():
            _stop(server)
        raise
    return servers, ports


def _first_lookup(port: int) -> None:
    """One lookup, waited for: a new server's first one loads code and plans, which on a core shared
    by three starting servers can outlast wrk's 2-second timeout."""
    import urllib.request

    body = orjson.dumps({"features": [f"driver_stats:{f}" for f in FEATURES], "entities": {"driver_id": [1]}})
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/get-online-features", body, {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()


def _load(ports: dict[str, int], entities: int, ids: int, seconds: float, warm_up: bool = False) -> dict[str, Any]:
    """One wrk run per server, all at once (concurrency 16 each). A failed warm-up is reported, not fatal."""
    with ThreadPoolExecutor(len(ports)) as pool:
        runs = {
            name: pool.submit(_wrk, port, "/get-online-features", "feast", entities, ids, 16, seconds)
            for name, port in ports.items()
        }
        out = {}
        for name, run in runs.items():
            try:
                out[name] = run.result()
            except RuntimeError as exc:
                if not warm_up:
                    raise RuntimeError(f"server {name!r}, {entities} entities: {exc}") from None
                print(f"warm-up of server {name!r}, {entities} entities: {exc}", file=sys.stderr)
        return out


def _quartiles(values: list[float]) -> tuple[float, float]:
    """The first and third quartiles (the values themselves when there are fewer than 4)."""
    if len(values) < 4:
        return min(values), max(values)
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def _cpu_now() -> float:
    """CPU seconds of this process, every thread (polars' included), user and system."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def spool_cost(lookups: int = 6000, per_pass: dict[int, int] | None = None) -> dict[int, dict[str, float]]:
    """CPU microseconds per logged lookup of ``record`` + spooling (spool on disk and in memory) and of the
    conversion (CSV and JSON paths), and KB spooled, for 1 and 100 entities x 20 features (W1's row shape),
    measured in this process."""
    import random
    import tempfile
    import time

    import orjson

    from featurestore.server import served_spool
    from featurestore.server.served_log import ServedLog
    from featurestore.serving.lookup import LookupPlan, ViewLookup, rows_text

    features = [f"f{i:02d}" for i in range(20)]
    view = ViewLookup("driver_stats", ["driver_id"], ["int64"], features, features, 7 * 86_400_000_000)
    plan = LookupPlan([view], ["driver_id"], ["driver_id", *features])
    layouts = [{f: i + 1 for i, f in enumerate(features)}]  # the server's cached layout
    rng = random.Random(7)
    now = time.time_ns() // 1000
    stored = [
        orjson.dumps([now - 1000, *(rng.random() * 100 if i % 2 == 0 else rng.randrange(10**6) for i in range(20)), 0])
        for _ in range(5000)
    ]
    per_pass = per_pass or {1: 80, 100: 20}  # what the loop's 10 ms flush holds at ~8,000 and ~2,000 req/s
    out: dict[int, dict[str, float]] = {}
    for entities in (1, 100):
        shapes = [
            ({"driver_id": [rng.randrange(100_000) for _ in range(entities)]}, rng.sample(stored, entities))
            for _ in range(200)
        ]
        # The texts the server's assembly makes (and would make unlogged): the log keeps them.
        texts = [[rows_text(rows)] for _, rows in shapes]
        m = out[entities] = {}
        for place in (served_spool.SpoolPlace.DISK, served_spool.SpoolPlace.MEMORY):
            with tempfile.TemporaryDirectory() as tmp:
                log = ServedLog(Path(tmp), 1.0, spool_place=place)
                log.start()
                log._stop.set()  # the writer thread stops: this loop spools instead
                start = _cpu_now()
                for i in range(lookups):
                    keys, rows = shapes[i % len(shapes)]
                    log.record(None, plan, keys, [rows], layouts, None, texts[i % len(shapes)])
                    if (i + 1) % per_pass[entities] == 0:
                        with log._io_lock:
                            log._spool_queue()
                with log._io_lock:
                    log._spool_queue()
                    spooled = sum(p.stat().st_size for p in log.spool.glob("spool-*"))
                    log._seal()
                m[f"spool_cpu_us_{place.value}"] = 1e6 * (_cpu_now() - start) / lookups
                m["spooled_kb"] = spooled / lookups / 1024
                if place is served_spool.SpoolPlace.MEMORY:
                    served_spool.reuse_blocks()  # as the converter process does
                    for path in served_spool.sealed_files(Path(tmp)):  # a copy for the JSON path
                        shutil.copy(path, path.with_name("json-" + path.name))
                    for path in served_spool.sealed_files(Path(tmp)):
                        csv = not path.name.startswith("json-")
                        start = _cpu_now()
                        served_spool._convert_file(Path(tmp), path, csv=csv)
                        m["convert_cpu_us" if csv else "convert_json_cpu_us"] = 1e6 * (_cpu_now() - start) / lookups
                        path.unlink()
                log.close()
    return out


def table(result: dict[str, Any]) -> list[str]:
    """The Markdown table of :func:`measure`'s result."""
    lines = [
        "| entities | concurrency | runs | logging off req/s | logging 1.0 req/s "
        "| drop, median of runs (quartiles) | A/A: off vs off (quartiles) | CPU/lookup off | CPU/lookup 1.0 "
        "| extra CPU, median of runs (quartiles) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def pct(value: float, quartiles: tuple[float, float], sign: str = "") -> str:
        return f"{100 * value:{sign}.1f} % ({100 * quartiles[0]:{sign}.1f} .. {100 * quartiles[1]:{sign}.1f} %)"

    for entities, m in result["shapes"].items():
        aa = pct(m["aa_drop"], m["aa_drop_quartiles"]) if "aa_drop" in m else "-"
        lines.append(
            f"| {entities} | 16 | {m['rounds']} | {m['rps_off']:,.0f} | {m['rps_logged']:,.0f} "
            f"| {pct(m['drop'], m['drop_quartiles'])} | {aa} "
            f"| {m['cpu_us_off']:,.0f} us | {m['cpu_us_logged']:,.0f} us "
            f"| {pct(m['cpu_extra'], m['cpu_extra_quartiles'], '+')} |"
        )
    if result.get("server_core") is not None:
        lines.append(
            f"\nthe three servers shared core {result['server_core'][0]}, busy "
            f"{100 * result['server_core_busy']:.0f} % of the time (wrk and Redis on the other cores)"
        )
    else:
        lines.append("\none core: the servers, wrk and Redis shared it")
    lines.append(
        f"logged: {result['logged_rows']:,} entity rows in {result['parquet_files']} Parquet files; "
        f"spool files left after the clean shutdown: {result['spool_files_left']}"
    )
    if result.get("spool_cost"):
        lines += [
            "",
            "| entities | record + spool CPU/lookup, disk / memory | spooled/lookup "
            "| conversion CPU/lookup, CSV path / JSON path (deferred) |",
            "|---|---|---|---|",
        ]
        for entities, m in result["spool_cost"].items():
            lines.append(
                f"| {entities} | {m['spool_cpu_us_disk']:,.1f} / {m['spool_cpu_us_memory']:,.1f} us "
                f"| {m['spooled_kb']:,.1f} KB | {m['convert_cpu_us']:,.0f} / {m['convert_json_cpu_us']:,.0f} us |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1/10 of W1 and 2 s per measurement")
    parser.add_argument("--duration", type=float, default=None, help="seconds per measurement (default 5)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per server and shape")
    parser.add_argument("--spool", choices=["memory", "disk"], default=None, help="the logging server's spool")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed")
    seconds = args.duration or (2.0 if args.quick else 5.0)
    print("\n".join(table(measure(0.1 if args.quick else 1.0, seconds, args.repeat, args.spool))))


if __name__ == "__main__":
    main()
