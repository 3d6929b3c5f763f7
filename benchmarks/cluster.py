"""Benchmark: W1 on a local Redis Cluster (3 masters + 3 replicas) beside one Redis, in the same run.

Run: python -m benchmarks.cluster [--quick] [--reps N] [--duration SECONDS] [--no-failover]
Materialize time (median of the repetitions, interleaved), lookups over HTTP through one server
worker (1 and 100 entities, concurrency 1 and 16, wrk, as benchmarks.online_http measures them),
and the failover recovery time: seconds from ``kill -9`` of a master until a lookup of keys on
every master answers again. Ratios are cluster / single Redis, measured back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import online_http
from benchmarks._util import median
from benchmarks.materialize import featurestore_once, prepare, redis_server

__all__ = ["local_cluster", "materialize_both", "lookups_both", "failover_seconds", "main"]

CASES = [(1, 1), (1, 16), (100, 1), (100, 16)]  # (entities per request, concurrency)


@contextlib.contextmanager
def local_cluster() -> Iterator[Any]:
    """A throwaway 6-node cluster on loopback (the tests' helper); yields it and stops it."""
    from tests.conftest import RedisClusterServers

    with tempfile.TemporaryDirectory(prefix="fs-cluster-") as tmp:
        cluster = RedisClusterServers(Path(tmp))
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


def materialize_both(scale: float, single: str, cluster: str, reps: int) -> dict[str, float]:
    """Median seconds to materialize W1 into each store, the runs interleaved."""
    times: dict[str, list[float]] = {"redis": [], "cluster": []}
    for rep in range(reps):
        for name, url in (("redis", single), ("cluster", cluster)):
            print(f"materialize W1 x{scale:g} into {name} (rep {rep + 1}/{reps}):", flush=True)
            times[name].append(featurestore_once(prepare(scale, url))["seconds"])
    return {name: median(t) for name, t in times.items()}


@contextlib.contextmanager
def _server(root: Path, online: str) -> Iterator[int]:
    """``featurestore serve`` (one worker) on ``root`` with its online store overridden to ``online``."""
    port = online_http._free_port()
    saved = os.environ.get("FEATURESTORE_ONLINE")
    os.environ["FEATURESTORE_ONLINE"] = online
    try:
        proc = online_http._start(
            ["-m", "featurestore.cli.main", "serve", "--repo", str(root), "--port", str(port)], port
        )
    finally:
        if saved is None:
            os.environ.pop("FEATURESTORE_ONLINE", None)
        else:
            os.environ["FEATURESTORE_ONLINE"] = saved
    try:
        yield port
    finally:
        online_http._stop(proc)


def lookups_both(scale: float, single: str, cluster: str, seconds: float, reps: int) -> list[dict[str, Any]]:
    """wrk on /get-online-features of two servers (single Redis, cluster), interleaved per case."""
    root = prepare(scale, single)
    ids = int(100_000 * scale)
    runs: dict[tuple[int, int, str], list[dict[str, float]]] = {}
    with _server(root, single) as p_single, _server(root, cluster) as p_cluster:
        ports = {"redis": p_single, "cluster": p_cluster}
        for port in ports.values():  # warm-up
            online_http._wrk(port, "/get-online-features", "feast", 1, ids, 1, 1)
        for _ in range(reps):
            for entities, conns in CASES:
                for name, port in ports.items():
                    r = online_http._wrk(port, "/get-online-features", "feast", entities, ids, conns, seconds)
                    runs.setdefault((entities, conns, name), []).append(r)
                print(_line(entities, conns, runs), flush=True)
    return [
        {
            "entities": e,
            "concurrency": c,
            "store": name,
            "p50_ms": median([r["p50_us"] for r in rs]) / 1000,
            "p99_ms": median([r["p99_us"] for r in rs]) / 1000,
            "rps": median([r["rps"] for r in rs]),
        }
        for (e, c, name), rs in runs.items()
    ]


def _line(entities: int, conns: int, runs: dict[tuple[int, int, str], list[dict[str, float]]]) -> str:
    single, cluster = runs[(entities, conns, "redis")][-1], runs[(entities, conns, "cluster")][-1]
    return (
        f"{entities:>3} entities c{conns:<2} | redis {single['rps']:>7,.0f} req/s p50 {single['p50_us'] / 1000:.2f} ms"
        f" | cluster {cluster['rps']:>7,.0f} req/s p50 {cluster['p50_us'] / 1000:.2f} ms"
        f" | cluster / redis {cluster['rps'] / single['rps']:.2f}"
    )


def failover_seconds(cluster: Any) -> dict[str, float]:
    """Kill -9 a master during lookups of keys on every master; seconds until every lookup succeeds again."""
    from featurestore.errors import StoreUnavailableError
    from featurestore.online import open_online_store

    store = open_online_store(cluster.url, "failover")
    keys = [f"k{i}" for i in range(300)]
    rows = [f"[1,{i},0]".encode() for i in range(300)]
    store.write_rows("v", "a", keys, rows)
    cluster.wait_replicated()
    outcomes: list[tuple[float, bool]] = []
    wrong, stop = [0], threading.Event()

    async def loop() -> None:
        while not stop.is_set():
            t = time.monotonic()
            try:
                got = await store.aread_rows("v", "a", keys)
                wrong[0] += sum(g != r for g, r in zip(got, rows, strict=True))
                outcomes.append((t, True))
            except StoreUnavailableError:
                outcomes.append((t, False))
                await asyncio.sleep(0.005)

    thread = threading.Thread(target=lambda: asyncio.run(loop()))
    thread.start()
    victim = cluster.masters()[0]
    try:
        time.sleep(0.5)
        killed = time.monotonic()
        cluster.kill(int(victim["port"]))
        while time.monotonic() < killed + 30:
            time.sleep(0.25)
            after = [ok for t, ok in outcomes if t > killed]
            if after and not after[0] and all(after[-20:]) and len(after) > 40:
                break
    finally:
        stop.set()
        thread.join()
        cluster.restart(int(victim["port"]))
        cluster.wait_healthy()
        store.close()
    failing = [t for t, ok in outcomes if t > killed and not ok]
    last_fail = max(failing, default=killed)
    recovered = min((t for t, ok in outcomes if ok and t > last_fail), default=float("nan"))
    return {
        "recovery_s": recovered - killed,
        "first_503_after_s": (min(failing) - killed) if failing else float("nan"),
        "node_timeout_s": cluster.node_timeout_ms / 1000,
        "wrong_values": wrong[0],
        "lookups": len(outcomes),
        "unavailable": len(failing),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1/10 of W1 and 2 s per wrk run")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=float, default=None, help="seconds per wrk run (default 5, quick 2)")
    parser.add_argument("--no-failover", action="store_true")
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    seconds = args.duration or (2.0 if args.quick else 5.0)
    result: dict[str, Any] = {"scale": scale}
    with redis_server() as single, local_cluster() as cluster:
        result["materialize_s"] = materialize_both(scale, single, cluster.url, args.reps)
        result["lookups"] = lookups_both(scale, single, cluster.url, seconds, args.reps)
        if not args.no_failover:
            result["failover"] = failover_seconds(cluster)
    print("\n" + render(result))
    return result


def render(r: dict[str, Any]) -> str:
    """Markdown tables of one run."""
    m = r["materialize_s"]
    lines = [
        f"### Redis Cluster (3 masters + 3 replicas, loopback) vs one Redis, W1 x{r['scale']:g}",
        "",
        "| measurement | one Redis | cluster | cluster / one Redis |",
        "|---|---|---|---|",
        f"| materialize, seconds | {m['redis']:.2f} | {m['cluster']:.2f} | {m['cluster'] / m['redis']:.2f}x time |",
    ]
    index = {(x["entities"], x["concurrency"], x["store"]): x for x in r["lookups"]}
    for entities, conns in CASES:
        s, c = index[(entities, conns, "redis")], index[(entities, conns, "cluster")]
        lines.append(
            f"| {entities} entities, concurrency {conns}: req/s (p50 / p99 ms) | {s['rps']:,.0f} "
            f"({s['p50_ms']:.2f} / {s['p99_ms']:.2f}) | {c['rps']:,.0f} ({c['p50_ms']:.2f} / {c['p99_ms']:.2f}) | "
            f"{c['rps'] / s['rps']:.2f}x req/s |"
        )
    if "failover" in r:
        f = r["failover"]
        lines += [
            "",
            f"Failover (kill -9 of a master, cluster-node-timeout {f['node_timeout_s']:g} s): every key answered "
            f"again {f['recovery_s']:.2f} s after the kill; first 503 {f['first_503_after_s']:.3f} s after it; "
            f"{f['unavailable']} of {f['lookups']} lookups answered 503, {f['wrong_values']} wrong values.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
