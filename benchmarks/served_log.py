"""Benchmark: lookup throughput with served-feature logging at 1.0 against logging off (W1 in Redis, wrk).

Run: python -m benchmarks.served_log [--quick] [--duration SECONDS] [--repeat N] [--spool memory|disk]
Three one-worker servers over the same Redis, one with FEATURESTORE_LOG_SAMPLE_RATE=1.0 (its spool
where ``--spool`` says, default the server's default, disk), two without; wrk drives
/get-online-features with 1 and 100 random entities x 20 features at concurrency 16. Each round runs
the logging server between the two others (which swap places every other round); the drop is the
median of the rounds' drops against the mean of the two others, with their quartiles, and the A/A
figure (the two unlogged servers against each other) shows what noise alone gives (on a shared
machine req/s move by 10-30 % between runs: a round's ratio cancels the slow part of that).
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
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.materialize import prepare, redis_server
from benchmarks.online_http import _free_port, _start, _stop, _wrk

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


def measure(scale: float, seconds: float, repeat: int, spool: str | None = None) -> dict[str, Any]:
    """Alternating wrk runs against the two servers; req/s and CPU microseconds per lookup, medians."""
    ids = int(100_000 * scale)
    with redis_server() as url:
        from featurestore import FeatureStore

        root = prepare(scale, url)
        store = FeatureStore(root)
        store.materialize(["driver_stats"])
        served = store.settings.offline_root / "_served"
        shutil.rmtree(served, ignore_errors=True)
        # Two servers that do not log and one that logs everything: each round runs the logging one
        # between the other two, so a drift during the round cancels out, and the two unlogged ones
        # against each other give the figure a round's noise alone makes (A/A).
        ports = {"off": _free_port(), "1.0": _free_port(), "off2": _free_port()}
        servers = {}
        if spool is not None:
            os.environ["FEATURESTORE_SERVED_SPOOL"] = spool
        for rate, port in ports.items():
            os.environ["FEATURESTORE_LOG_SAMPLE_RATE"] = "1.0" if rate == "1.0" else "0"
            servers[rate] = _start(
                ["-m", "featurestore.cli.main", "serve", "--repo", str(root), "--port", str(port)], port
            )
        os.environ.pop("FEATURESTORE_LOG_SAMPLE_RATE", None)
        os.environ.pop("FEATURESTORE_SERVED_SPOOL", None)
        rps: dict[tuple[int, str], list[float]] = {}
        cpu: dict[tuple[int, str], list[float]] = {}
        try:
            for entities in (1, 100):
                for round_ in range(repeat):
                    # The unlogged servers swap places every other round: neither is favoured.
                    for rate in ("off", "1.0", "off2") if round_ % 2 == 0 else ("off2", "1.0", "off"):
                        before = _cpu_seconds(servers[rate].pid)
                        r = _wrk(ports[rate], "/get-online-features", "feast", entities, ids, 16, seconds)
                        used = _cpu_seconds(servers[rate].pid) - before
                        rps.setdefault((entities, rate), []).append(r["rps"])
                        cpu.setdefault((entities, rate), []).append(1e6 * used / (r["rps"] * seconds))
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
        # Per round: the logging server against the mean of the two others (which bracket it in time),
        # and the two others against each other; the medians of the rounds' ratios are the figures
        # (the quartiles show the spread).
        off, on, off2 = (rps[(entities, k)] for k in ("off", "1.0", "off2"))
        c_off, c_on, c_off2 = (cpu[(entities, k)] for k in ("off", "1.0", "off2"))
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
        "logged_rows": rows,
        "parquet_files": len(files),
        "spool_files_left": len(list((served / ".spool").glob("spool-*"))),
        "served_dir": str(served),
        "spool_cost": spool_cost(),
    }


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
    from featurestore.serving.lookup import LookupPlan, ViewLookup

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
        m = out[entities] = {}
        for place in (served_spool.SpoolPlace.DISK, served_spool.SpoolPlace.MEMORY):
            with tempfile.TemporaryDirectory() as tmp:
                log = ServedLog(Path(tmp), 1.0, spool_place=place)
                log.start()
                log._stop.set()  # the writer thread stops: this loop spools instead
                start = _cpu_now()
                for i in range(lookups):
                    keys, rows = shapes[i % len(shapes)]
                    log.record(None, plan, keys, [rows], layouts)
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
        "| entities | concurrency | rounds | logging off req/s | logging 1.0 req/s "
        "| drop, median of rounds (quartiles) | A/A: off vs off (quartiles) | CPU/lookup off | CPU/lookup 1.0 "
        "| extra CPU, median of rounds (quartiles) |",
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
    lines.append(
        f"\nlogged: {result['logged_rows']:,} entity rows in {result['parquet_files']} Parquet files; "
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
