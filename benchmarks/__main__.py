"""The whole comparison on W1 (featurestore, Feast 0.67 and the bare-engine floors) and W2, in one run.

Run: python -m benchmarks [--quick] [--reps N] [--duration S] [--no-feast]   (also: make bench)
Prints Markdown tables (figures, ratios to Feast and to the floors, correctness checks) and writes
benchmarks/results/latest.json and latest.md. Every measurement of a subject is interleaved with
the others' so machine noise hits them alike; figures are medians over the repetitions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

from benchmarks import feast as feast_bench
from benchmarks import training_set
from benchmarks._util import ROOT, machine, median, run_child, workdir
from benchmarks.w1 import FEATURES

__all__ = ["run_training", "run_online", "run_gates", "run_startup", "run_w2", "run_ui", "render", "main"]

RESULTS = ROOT / "results"
# The helpers of benchmarks.online_http this module drives (its wrk load generator, servers, floor).
ONLINE_HTTP_NEEDS = ("_free_port", "_start", "_stop", "_wrk", "floor_app")
ONLINE_CASES = [(1, 1), (1, 16), (100, 1), (100, 16)]  # (entities per request, concurrency)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    secs = median([r["seconds"] for r in runs])
    return {
        "seconds": secs,
        "rows": runs[0]["rows"],
        "rows_per_s": runs[0]["rows"] / secs,
        "peak_mb": max(r["peak_mb"] for r in runs),
    }


# -- training set ----------------------------------------------------------


def run_training(scale: float, reps: int, feast_repo: Path | None) -> dict[str, Any]:
    """get_training_set, the DuckDB ASOF floor and Feast's file and DuckDB stores, each in a fresh process."""
    root = training_set.prepare(scale)
    entity_rows = int(1_000_000 * scale)
    runs: dict[str, list[dict[str, Any]]] = {"featurestore": [], "floor": []}
    if feast_repo is not None:
        runs.update({"feast_file": [], "feast_duckdb": []})
    outputs = {s: feast_repo / f"training-{s}.parquet" for s in feast_bench.OFFLINE_STORES} if feast_repo else {}
    for rep in range(reps):
        for which in runs:
            _log(f"training set: {which} (rep {rep + 1}/{reps})")
            if which.startswith("feast_"):
                store = which.removeprefix("feast_")
                assert feast_repo is not None
                out = outputs[store] if rep == 0 else None  # written after the timing, once
                runs[which].append(feast_bench.training(feast_repo, store, out))
            else:
                runs[which].append(run_child("benchmarks.training_set", "--child", which, "--root", str(root)))
    result: dict[str, Any] = {"entity_rows": entity_rows, "reps": reps}
    result.update({which: _summary(rs) for which, rs in runs.items()})
    if feast_repo is not None:
        result["correctness"] = _training_correctness(root, feast_repo, outputs)
    return result


def _training_correctness(root: Path, feast_repo: Path, outputs: dict[str, Path]) -> dict[str, Any]:
    """featurestore's values against Feast's on the rows both return (joined on row_id)."""
    import polars as pl

    from featurestore import FeatureStore

    entity = pl.read_parquet(feast_repo / "entities.parquet")
    frame = FeatureStore(root).get_training_set(entity, [f"driver_stats:{f}" for f in FEATURES])
    return {store: feast_bench.compare_training(frame, path) for store, path in outputs.items()}


# -- materialize and online ------------------------------------------------


def _materialize_featurestore(root: Path) -> dict[str, Any]:
    from benchmarks.materialize import featurestore_once

    return featurestore_once(root)


def _materialize_floor(root: Path, version: str, port: int) -> dict[str, Any]:
    """The floor: one DuckDB latest-row-per-driver query, rows JSON-encoded by polars, pipelined MSETs."""
    from benchmarks.materialize import floor_once

    return floor_once(root, version, f"redis://127.0.0.1:{port}/0")


def _materialize_feast(repo: Path, port: int, offline: str) -> dict[str, Any]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, db=1)
    client.flushdb()
    out = feast_bench.materialize(repo, f"127.0.0.1:{port},db=1", offline)
    out["rows"] = int(client.dbsize())  # Feast writes one hash per entity
    client.close()
    return out


def _offline_latest(root: Path, ids: list[int]) -> dict[str, list[Any]]:
    """The reference for online values: each driver's latest source row (brute force, polars)."""
    import polars as pl

    df = pl.read_parquet(root / "data" / "driver_stats.parquet")
    latest = df.sort("event_timestamp").group_by("driver_id").last()
    rows = pl.DataFrame({"driver_id": ids}).join(latest, on="driver_id", how="left", maintain_order="left")
    return {f: rows[f].to_list() for f in FEATURES}


def run_online(
    scale: float, reps: int, seconds: float, feast_repo: Path | None, *, sample: int = 100
) -> dict[str, Any]:
    """Materialize W1 into one redis-server for both systems, then serve it and drive every server with wrk.

    Returns {"materialize": ..., "online": ..., "correctness": ...}; the floor for online is
    online_http's bare MGET route. Everything started here is stopped before returning.
    """
    from benchmarks import online_http
    from benchmarks.materialize import prepare, redis_server

    out: dict[str, Any] = {}
    with redis_server() as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        root = prepare(scale, url)
        runs: dict[str, list[dict[str, Any]]] = {"featurestore": []}
        if feast_repo is not None:
            runs.update({"feast_duckdb": [], "feast": []})  # the last one written is the one Feast serves
        runs["floor"] = []
        for rep in range(reps):
            for which in runs:
                _log(f"materialize: {which} (rep {rep + 1}/{reps})")
                if which == "floor":
                    runs[which].append(_materialize_floor(root, runs["featurestore"][-1]["version"], port))
                elif which.startswith("feast"):
                    assert feast_repo is not None
                    offline = "duckdb" if which == "feast_duckdb" else "file"
                    runs[which].append(_materialize_feast(feast_repo, port, offline))
                else:
                    runs[which].append(_materialize_featurestore(root))
        out["materialize"] = {
            w: {
                "seconds": median([r["seconds"] for r in rs]),
                "rows": rs[0]["rows"],
                "rows_per_s": rs[0]["rows"] / median([r["seconds"] for r in rs]),
            }
            for w, rs in runs.items()
        }
        version = runs["featurestore"][-1]["version"]
        out.update(_serve_and_load(online_http, root, url, version, scale, reps, seconds, feast_repo, port, sample))
    return out


def _serve_and_load(
    online_http: Any,
    root: Path,
    url: str,
    version: str,
    scale: float,
    reps: int,
    seconds: float,
    feast_repo: Path | None,
    redis_port: int,
    sample: int,
) -> dict[str, Any]:
    from featurestore import FeatureStore

    store = FeatureStore(root)
    prefix = store.online_store().prefix("driver_stats", version)
    drivers = int(100_000 * scale)
    fs_port, floor_port = online_http._free_port(), online_http._free_port()
    started = []
    with contextlib.ExitStack() as stack:
        # No per-request access log, as Feast's server runs with --no-access-log.
        stack.enter_context(mock.patch.dict(os.environ, {"FEATURESTORE_LOG_LEVEL": "warning"}))
        started.append(
            online_http._start(
                ["-m", "featurestore.cli.main", "serve", "--repo", str(root), "--port", str(fs_port)], fs_port
            )
        )
        stack.callback(online_http._stop, started[-1])
        started.append(
            online_http._start(
                ["-m", "benchmarks.online_http", "--serve-floor", url, prefix, str(floor_port)], floor_port
            )
        )
        stack.callback(online_http._stop, started[-1])
        # (label, port, path, body shape): the same wrk script drives every server.
        targets = [
            ("featurestore", fs_port, "/get-online-features", "feast"),
            ("featurestore /rows", fs_port, "/rows", "rows"),
            ("floor", floor_port, "/rows", "rows"),
        ]
        feast_url = None
        if feast_repo is not None:
            feast_url = stack.enter_context(feast_bench.feast_server(feast_repo, f"127.0.0.1:{redis_port},db=1"))
            targets.append(("feast", int(feast_url.rsplit(":", 1)[1]), "/get-online-features", "feast"))
        fs_url = f"http://127.0.0.1:{fs_port}"
        ids = random.Random(11).sample(range(drivers), min(sample, drivers))
        correctness: dict[str, Any] = {}
        reference = _offline_latest(root, ids)
        served = feast_bench.online_lookup(fs_url, ids)
        correctness["featurestore_vs_offline"] = {
            "entities": len(ids),
            "values_differing": sum(
                1 for f in FEATURES for a, b in zip(served[f], reference[f], strict=True) if a != b
            ),
        }
        if feast_url is not None:
            correctness["featurestore_vs_feast"] = feast_bench.compare_online(fs_url, feast_url, ids)
        for label, port, path, mode in targets:  # warm-up: first requests, caches, registry loads
            _log(f"online: warm-up {label}")
            online_http._wrk(port, path, mode, 1, drivers, 1, 1)
        runs: dict[tuple[int, int, str], list[dict[str, float]]] = {}
        for rep in range(reps):
            for entities, conns in ONLINE_CASES:
                for label, port, path, mode in targets:
                    _log(f"online: {label} {entities} entities c{conns} (rep {rep + 1}/{reps})")
                    r = online_http._wrk(port, path, mode, entities, drivers, conns, seconds)
                    if not r["checked"]:  # a stalled server answers nothing and wrk reports no error
                        raise RuntimeError(f"{label}: no response in {seconds:g} s of load")
                    runs.setdefault((entities, conns, label), []).append(r)
    online = [
        {
            "entities": e,
            "concurrency": c,
            "system": label,
            "p50_ms": median([r["p50_us"] for r in rs]) / 1000,
            "p99_ms": median([r["p99_us"] for r in rs]) / 1000,
            "rps": median([r["rps"] for r in rs]),
            "requests_checked": int(sum(r["checked"] for r in rs)),
        }
        for (e, c, label), rs in runs.items()
    ]
    return {"online": online, "correctness": correctness, "seconds_per_run": int(seconds)}


# -- gates -----------------------------------------------------------------


def run_gates(scale: float, reps: int) -> dict[str, Any]:
    """Validation-gate overhead on ingest (benchmarks.gates); its log goes to stderr."""
    from benchmarks import gates

    argv = ["--reps", str(reps), *(["--quick"] if scale < 1 else [])]
    with contextlib.redirect_stdout(sys.stderr):
        return dict(gates.main(argv))


# -- W2: window aggregations -------------------------------------------------

# (cards, events, entity rows): the W2, and a hundredth of it for --quick
W2_SIZES = {False: (100_000, 10_000_000, 1_000_000), True: (1_000, 100_000, 10_000)}


def run_w2(quick: bool) -> dict[str, Any]:
    """W2 (benchmarks.w2): training set vs its DuckDB floor, materialize, pushes and lookups on a fresh Redis."""
    from benchmarks import w2
    from benchmarks.materialize import redis_server

    cards, events, rows = W2_SIZES[quick]
    argv = ["--cards", str(cards), "--events", str(events), "--rows", str(rows)]
    with redis_server() as url, contextlib.redirect_stdout(sys.stderr):
        return dict(w2.main([*argv, "--redis", url]))


def _w2_table(w: dict[str, Any]) -> list[str]:
    return [
        f"### W2: window aggregations ({w['cards']:,} cards, {w['events']:,} events over 30 days, "
        f"{w['rows']:,} entity rows, {w['columns']} features)",
        "",
        "| training set s | floor (DuckDB RANGE windows) s | ratio | values unlike the floor's | peak RSS MB | "
        "materialize s | push events/s (100 per call) | lookup p50 / p99 ms (SDK, 12 features) |",
        "|---|---|---|---|---|---|---|---|",
        f"| {w['training_s']:.2f} | {w['floor_s']:.2f} | {w['ratio_to_floor']:.2f}x | {w['values_differing']:,} | "
        f"{w['training_peak_rss_mb']:,.0f} | {w.get('materialize_s', '-')} | {w.get('push_events_per_s', '-'):,} | "
        f"{w.get('online_sdk_p50_ms', '-')} / {w.get('online_sdk_p99_ms', '-')} |",
    ]


# -- start-up --------------------------------------------------------------


def run_startup(scale: float, reps: int) -> dict[str, Any]:
    """``import featurestore`` and ``featurestore serve`` to a ready /health, alternating with their floors."""
    from benchmarks import startup
    from benchmarks.materialize import prepare, redis_server

    with redis_server() as url:
        return startup.run(prepare(scale, url), url, "fs:w1:driver_stats:none:", reps)


def run_served_log(scale: float, reps: int, seconds: float) -> dict[str, Any]:
    """Lookup throughput and CPU with served-feature logging at 1.0 against off (benchmarks.served_log)."""
    from benchmarks import served_log

    # Short runs, many of them, each with new servers: the drop is the median of the runs' own ratios.
    return served_log.measure(scale, min(seconds, 2.0), max(8, 4 * reps))


# -- output ----------------------------------------------------------------


def run_ui(quick: bool, reps: int) -> dict[str, Any]:
    """The web UI's endpoints and page renders on 200 views and a 1 M-row quarantine (benchmarks.ui)."""
    from benchmarks import ui

    return ui.measure(200_000 if quick else 2_000_000, max(reps, 3))


def _x(a: float, b: float | None) -> str:
    return f"{a / b:.2f}x" if b else "-"


def _training_table(t: dict[str, Any]) -> list[str]:
    floor = t["floor"]["seconds"]
    feast = t.get("feast_duckdb", {}).get("seconds")
    ours = t["featurestore"]["seconds"]
    lines = [
        f"### Training set: {t['entity_rows']:,} entity rows x 20 features (median of {t['reps']})",
        "",
        "| system | seconds | rows/s | peak MB | entity rows returned | time / floor | time / featurestore |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = {
        "featurestore": "featurestore",
        "feast_file": "Feast 0.67, file store (default)",
        "feast_duckdb": "Feast 0.67, DuckDB store",
        "floor": "bare DuckDB ASOF JOIN (floor, no ttl)",
    }
    for key, label in labels.items():
        if key not in t:
            continue
        m = t[key]
        dropped = t["entity_rows"] - m["rows"]
        returned = f"{m['rows']:,}" + (f" (drops {dropped:,} = {dropped / t['entity_rows']:.1%})" if dropped else "")
        lines.append(
            f"| {label} | {m['seconds']:.2f} | {m['rows'] / m['seconds']:,.0f} | {m['peak_mb']:,.0f} | {returned} | "
            f"{_x(m['seconds'], floor)} | {_x(m['seconds'], ours)} |"
        )
    if "feast_file" not in t:
        lines.append("| Feast 0.67 | TODO: not measured (Feast not installed or --no-feast) | | | | | |")
    elif feast:
        lines.append("")
        lines.append(
            f"featurestore is {t['feast_file']['seconds'] / ours:.1f}x faster than Feast's file store and "
            f"{feast / ours:.1f}x faster than its DuckDB store."
        )
    return lines


def _materialize_table(m: dict[str, Any]) -> list[str]:
    ours = m["featurestore"]["seconds"]
    lines = [
        "### Materialize W1 into Redis (latest row per entity, 20 features)",
        "",
        "| system | seconds | rows written | rows/s | time / floor | time / featurestore |",
        "|---|---|---|---|---|---|",
    ]
    floor = m.get("floor", {}).get("seconds")
    labels = (
        ("featurestore", "featurestore"),
        ("feast", "Feast 0.67, file offline store (default)"),
        ("feast_duckdb", "Feast 0.67, DuckDB offline store"),
        ("floor", "floor: DuckDB latest rows + polars JSON + Redis MSET pipeline"),
    )
    for key, label in labels:
        if key in m:
            r = m[key]
            lines.append(
                f"| {label} | {r['seconds']:.2f} | {r['rows']:,} | {r['rows_per_s']:,.0f} | "
                f"{_x(r['seconds'], floor)} | {_x(r['seconds'], ours)} |"
            )
        elif key == "feast":
            lines.append("| Feast 0.67 | TODO: not measured | | | | |")
    return lines


def _online_table(rows: list[dict[str, Any]], seconds: int) -> list[str]:
    index = {(r["entities"], r["concurrency"], r["system"]): r for r in rows}
    labels = {
        "featurestore": "featurestore /get-online-features",
        "featurestore /rows": "featurestore /rows (native)",
        "feast": "Feast 0.67 feature server",
        "floor": "floor: bare uvicorn + Redis MGET",
    }
    lines = [
        f"### Online lookups over HTTP, one server worker, wrk {seconds} s per run (median over runs)",
        "",
        "| entities | conc. | system | p50 ms | p99 ms | req/s | req/s / floor | p99 / floor | req/s / Feast |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for entities, conns in ONLINE_CASES:
        floor = index.get((entities, conns, "floor"))
        feast = index.get((entities, conns, "feast"))
        for key, label in labels.items():
            r = index.get((entities, conns, key))
            if r is None:
                if key == "feast":
                    lines.append(f"| {entities} | {conns} | {label} | TODO: not measured | | | | | |")
                continue
            lines.append(
                f"| {entities} | {conns} | {label} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rps']:,.0f} | "
                f"{_x(r['rps'], floor['rps'] if floor else None)} | "
                f"{_x(r['p99_ms'], floor['p99_ms'] if floor else None)} | "
                f"{_x(r['rps'], feast['rps'] if feast else None)} |"
            )
    return lines


def _gates_table(g: dict[str, Any]) -> list[str]:
    return [
        f"### Validation gate overhead on ingest ({g['rows']:,} rows, 20 features, range + not-null each)",
        "",
        "| ingest without gate s | ingest with gate s | overhead | gate alone s | Feast |",
        "|---|---|---|---|---|",
        f"| {g['ingest_without_gate_s']:.3f} | {g['ingest_with_gate_s']:.3f} | {g['overhead_ratio']:+.1%} | "
        f"{g['gate_alone_s']:.3f} | no validation gate to compare |",
    ]


def _correctness_table(r: dict[str, Any]) -> list[str]:
    lines = ["### Correctness", "", "| check | compared | differing |", "|---|---|---|"]
    for store, c in r.get("training", {}).get("correctness", {}).items():
        lines.append(
            f"| training set vs Feast {store} store (rows both return) | {c['values_compared']:,} values "
            f"({c['non_null_values_compared']:,} non-null) in {c['rows_compared']:,} rows | {c['values_differing']:,} |"
        )
        if c["rows_missing_in_feast"]:
            lines.append(
                f"| rows Feast {store} store drops that have a value inside the ttl | "
                f"{c['rows_missing_in_feast']:,} dropped rows | {c['missing_rows_with_features']:,} |"
            )
    online = r.get("online", {}).get("correctness", {})
    if "featurestore_vs_offline" in online:
        c = online["featurestore_vs_offline"]
        lines.append(
            f"| online (HTTP) vs latest offline row | {c['entities']} drivers x 20 | {c['values_differing']:,} |"
        )
    if "featurestore_vs_feast" in online:
        c = online["featurestore_vs_feast"]
        lines.append(f"| online (HTTP) vs Feast server | {c['entities']} drivers x 20 | {c['values_differing']:,} |")
    if not r.get("feast"):
        lines.append("| against Feast | TODO: Feast not measured | - |")
    return lines


def render(r: dict[str, Any]) -> str:
    """The Markdown report of one run's results (as written to latest.json)."""
    m = r["machine"]
    out = [
        f"## W1 benchmark{' (quick: 1/10 of W1)' if r['scale'] < 1 else ''}",
        "",
        f"Machine: {m['cores']} cores, {m['memory_gb']} GB memory, Python {m['python']}; "
        f"{r['date']}. Command: `{r['command']}`.",
        "",
    ]
    for key, table in (("training", _training_table), ("materialize", _materialize_table)):
        out += [*(table(r[key]) if key in r else [f"### {key}: TODO: {r.get('todo', {}).get(key, 'not run')}"]), ""]
    if "online" in r:
        out += [*_online_table(r["online"]["online"], r["online"]["seconds_per_run"]), ""]
    else:
        out += [f"### Online lookups: TODO: {r.get('todo', {}).get('online', 'not run')}", ""]
    if "startup" in r:
        from benchmarks.startup import table

        out += [*table(r["startup"]), ""]
    if "gates" in r:
        out += [*_gates_table(r["gates"]), ""]
    else:
        out += [f"### Gates: TODO: {r.get('todo', {}).get('gates', 'not run')}", ""]
    if "w2" in r:
        out += [*_w2_table(r["w2"]), ""]
    if "served_log" in r:
        from benchmarks.served_log import table

        out += ["### Served-feature logging at 1.0 (three servers loaded at once on one core, one logging)", ""]
        out += [*table(r["served_log"]), ""]
    if "ui" in r:
        from benchmarks.ui import table as ui_table

        out += [*ui_table(r["ui"]), ""]
    out += _correctness_table(r)
    if r.get("feast_note"):
        out += ["", f"Feast: {r['feast_note']}"]
    return "\n".join(out) + "\n"


def _missing(module: str, names: tuple[str, ...]) -> str | None:
    """Why a sibling benchmark module cannot be called (not written yet, or without a helper we use)."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        return f"{module} is not there yet ({exc})"
    absent = [n for n in names if not hasattr(mod, n)]
    return f"{module} lacks {', '.join(absent)}" if absent else None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="about a tenth of W1, 1 s wrk runs")
    p.add_argument("--reps", type=int, default=3, help="repetitions of every measurement (median)")
    p.add_argument("--duration", type=float, default=None, help="seconds per wrk run (default 3, quick 1)")
    p.add_argument("--no-feast", action="store_true", help="skip Feast (no install)")
    p.add_argument(
        "--only", default="training,materialize,online,startup,gates,w2,served_log,ui", help="comma-separated subjects"
    )
    p.add_argument("--out", type=Path, help="folder for latest.json and latest.md (default benchmarks/results)")
    args = p.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    seconds = args.duration or (1.0 if args.quick else 3.0)
    only = set(args.only.split(","))
    command = "python -m benchmarks" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    result: dict[str, Any] = {
        "command": command,
        "scale": scale,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "feast": False,
        "todo": {},
    }
    feast_repo = None
    if not args.no_feast:
        try:
            feast_bench.feast_python()
            feast_repo = feast_bench.prepare(scale, training_set.prepare(scale))
            result["feast"] = True
            result["feast_note"] = (
                f"{feast_bench.FEAST_VERSION} in its own virtualenv; feature server run with "
                "`feast serve -w 1 --no-access-log --max-requests 0` (no worker recycling); featurestore's "
                "server with FEATURESTORE_LOG_LEVEL=warning (no access log either)."
            )
        except feast_bench.FeastUnavailableError as exc:
            result["feast_note"] = f"not measured: {exc}"
            _log(f"Feast skipped: {exc}")
    if "training" in only:
        result["training"] = run_training(scale, args.reps, feast_repo)
    if only & {"materialize", "online"}:
        missing = _missing("benchmarks.online_http", ONLINE_HTTP_NEEDS) or _missing(
            "benchmarks.materialize", ("prepare", "redis_server")
        )
        if missing:
            result["todo"]["materialize"] = result["todo"]["online"] = missing
        else:
            online = run_online(scale, args.reps, seconds, feast_repo)
            result["materialize"] = online.pop("materialize")
            result["online"] = online
    if "startup" in only:
        result["startup"] = run_startup(scale, args.reps)
    if "gates" in only:
        missing = _missing("benchmarks.gates", ("main",))
        if missing:
            result["todo"]["gates"] = missing
        else:
            result["gates"] = run_gates(scale, args.reps)
    if "w2" in only:
        result["w2"] = run_w2(args.quick)
    if "served_log" in only and shutil.which("wrk"):
        result["served_log"] = run_served_log(scale, args.reps, seconds)
    if "ui" in only:
        result["ui"] = run_ui(args.quick, args.reps)
    text = render(result)
    print(text)
    # Quick runs never overwrite the committed full-run results.
    folder = args.out or (workdir("results") if args.quick else RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    (folder / "latest.md").write_text(text)
    return result


if __name__ == "__main__":
    main()
