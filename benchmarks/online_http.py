"""Benchmark: the online HTTP server on W1 in Redis against a bare MGET endpoint (the floor), driven by wrk.

Run: python -m benchmarks.online_http [--quick] [--duration SECONDS] [--rounds N]
One server worker on 127.0.0.1; requests of 1 and 100 random existing entities x 20 features at
concurrency 1 and 16. The wrk script counts every response that is not a 200 with all values
PRESENT (the run fails if there is any). Besides req/s and latency, each measure gives the CPU
time its server process spent per request (Linux): wrk, Redis and the server share the cores,
so on a loaded machine req/s swings with the other work while CPU per request hardly moves.
With ``--rounds`` the three servers are measured in alternation and medians are printed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.materialize import prepare, redis_server
from benchmarks.w1 import FEATURES

__all__ = ["floor_app", "main"]

LUA = r"""
local n_entities, n_ids, path, mode = %(entities)d, %(ids)d, "%(path)s", "%(mode)s"
local features = '%(features)s'
bad, checked = 0, 0
local threads = {}
math.randomseed(%(seed)d)
function setup(thread) table.insert(threads, thread) end
function request()
  local ids = {}
  for i = 1, n_entities do ids[i] = math.random(0, n_ids - 1) end
  local body
  if mode == "feast" then
    body = '{"features":' .. features .. ',"entities":{"driver_id":[' .. table.concat(ids, ",") .. ']}}'
  else
    body = '{"view":"driver_stats","entities":{"driver_id":[' .. table.concat(ids, ",") .. ']}}'
  end
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end
function response(status, headers, body)
  checked = checked + 1
  if status ~= 200 or body:find("NOT_FOUND") or body:find("OUTSIDE_MAX_AGE") or body:find("null") then
    bad = bad + 1
  end
end
function done(summary, latency, requests)
  local b, c = 0, 0
  for _, t in ipairs(threads) do b = b + t:get("bad"); c = c + t:get("checked") end
  io.write(string.format("BENCH p50_us=%%d p99_us=%%d rps=%%.1f bad=%%d checked=%%d errors=%%d\n",
    latency:percentile(50), latency:percentile(99), summary.requests / (summary.duration / 1e6), b, c,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout))
end
"""


def floor_app(url: str, prefix: str):  # type: ignore[no-untyped-def]
    """The floor: a bare Starlette route doing one MGET and splicing the stored rows."""
    import orjson
    import redis.asyncio as aredis
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    client = aredis.Redis.from_url(url)

    async def rows(request: Request) -> Response:
        data = orjson.loads(await request.body())
        keys = [prefix + str(k) for k in data["entities"]["driver_id"]]
        found = await client.mget(keys)
        return Response(b'{"rows":[' + b",".join(r or b"null" for r in found) + b"]}", media_type="application/json")

    return Starlette(routes=[Route("/rows", rows, methods=["POST"])])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited at startup")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def _start(args: list[str], port: int, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[bytes]:
    """``python <args>`` with this checkout importable (and ``env`` added), once it listens on ``port``;
    ``popen``: more of Popen's arguments."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), **(env or {})}
    # Not a pipe: nobody reads it, and the access log would fill it and stall the server.
    proc = subprocess.Popen(
        [sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen
    )
    _wait(port, proc)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (None where /proc is not there)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(
    port: int,
    path: str,
    mode: str,
    entities: int,
    ids: int,
    conns: int,
    seconds: float,
    pid: int | None = None,
) -> dict[str, float]:
    """One wrk measure; with the server's ``pid``, also its CPU microseconds per request (``cpu_us``)."""
    before = None if pid is None else _cpu_seconds(pid)
    features = "[" + ",".join(f'"driver_stats:{f}"' for f in FEATURES) + "]"
    script = LUA % {"entities": entities, "ids": ids, "path": path, "mode": mode, "features": features, "seed": 7}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{conns}",
                f"-d{int(seconds)}s",
                "--latency",
                "-s",
                fh.name,
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        os.unlink(fh.name)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr or out.stdout}")
    out = out.stdout
    match = re.search(r"BENCH (.*)", out)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    result = {k: float(v) for k, v in (kv.split("=") for kv in match.group(1).split())}
    if result["bad"] or result["errors"]:
        raise RuntimeError(f"{mode} {path}: {result['bad']:.0f} bad responses, {result['errors']:.0f} errors")
    after = None if pid is None else _cpu_seconds(pid)
    if before is not None and after is not None and result["checked"]:
        result["cpu_us"] = (after - before) / result["checked"] * 1e6
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1/10 of W1 and 2 s per measurement")
    parser.add_argument("--duration", type=float, default=None, help="seconds per measurement (default 5)")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the servers this many times; medians")
    parser.add_argument("--serve-floor", nargs=3, metavar=("REDIS_URL", "PREFIX", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        import uvicorn

        url, prefix, port = args.serve_floor
        uvicorn.run(
            floor_app(url, prefix),
            host="127.0.0.1",
            port=int(port),
            log_level="warning",
            access_log=False,
            loop="uvloop",
            http="httptools",
        )
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed")
    scale = 0.1 if args.quick else 1.0
    seconds = args.duration or (2.0 if args.quick else 5.0)
    ids = int(100_000 * scale)
    with redis_server() as url:
        from featurestore import FeatureStore

        root = prepare(scale, url)
        store = FeatureStore(root)
        (result,) = store.materialize(["driver_stats"])
        print(f"W1 x{scale:g}: {result.rows_written:,} entities materialized into Redis in {result.seconds:.2f} s")
        prefix = store.online_store().prefix("driver_stats", result.version)
        port, floor_port = _free_port(), _free_port()
        server = _start(["-m", "featurestore.cli.main", "serve", "--repo", str(root), "--port", str(port)], port)
        floor = _start(["-m", "benchmarks.online_http", "--serve-floor", url, prefix, str(floor_port)], floor_port)
        try:
            runs: dict[tuple[int, int], list[tuple[dict[str, float], ...]]] = {}
            for _ in range(args.rounds):
                for entities in (1, 100):
                    for conns in (1, 16):
                        feast = _wrk(port, "/get-online-features", "feast", entities, ids, conns, seconds, server.pid)
                        native = _wrk(port, "/rows", "rows", entities, ids, conns, seconds, server.pid)
                        bare = _wrk(floor_port, "/rows", "rows", entities, ids, conns, seconds, floor.pid)
                        runs.setdefault((entities, conns), []).append((feast, native, bare))
                        print(_line(entities, conns, feast, native, bare), flush=True)
            rows = [(e, c, *_medians(rs)) for (e, c), rs in runs.items()]
        finally:
            _stop(server)
            _stop(floor)
    print("\n" + _table(rows))


def _medians(rounds: list[tuple[dict[str, float], ...]]) -> tuple[dict[str, float], ...]:
    """Per server, the median of each figure over the rounds; ratios to the floor are medians of per-round ratios."""
    import statistics

    out = []
    for i in range(3):
        merged = {k: statistics.median(r[i][k] for r in rounds) for k in rounds[0][i]}
        merged["rps_vs_floor"] = statistics.median(r[i]["rps"] / r[2]["rps"] for r in rounds)
        merged["p99_vs_floor"] = statistics.median(r[i]["p99_us"] / r[2]["p99_us"] for r in rounds)
        if all("cpu_us" in r[i] and "cpu_us" in r[2] for r in rounds):
            merged["cpu_vs_floor"] = statistics.median(r[2]["cpu_us"] / r[i]["cpu_us"] for r in rounds)
        out.append(merged)
    return tuple(out)


def _cpu(r: dict[str, float]) -> str:
    return f"  cpu {r['cpu_us']:>4.0f} us/req" if "cpu_us" in r else ""


def _fmt(r: dict[str, float]) -> str:
    return f"{r['p50_us'] / 1000:.2f} / {r['p99_us'] / 1000:.2f} ms  {r['rps']:>7,.0f} req/s" + _cpu(r)


def _line(entities: int, conns: int, feast: dict[str, float], native: dict[str, float], bare: dict[str, float]) -> str:
    line = (
        f"{entities:>3} entities c{conns:<2} | feast {_fmt(feast)} | rows {_fmt(native)} | floor {_fmt(bare)} | "
        f"rps vs floor: feast {feast['rps'] / bare['rps']:.2f}, rows {native['rps'] / bare['rps']:.2f}"
    )
    if "cpu_us" in feast and "cpu_us" in native and "cpu_us" in bare:
        cpu = bare["cpu_us"]
        line += f"; floor CPU / ours: feast {cpu / feast['cpu_us']:.2f}, rows {cpu / native['cpu_us']:.2f}"
    return line


def _table(rows: list[tuple[int, int, dict[str, float], dict[str, float], dict[str, float]]]) -> str:
    head = (
        "| entities | conc. | endpoint | p50 ms | p99 ms | p99 vs floor | req/s | req/s vs floor "
        "| CPU us/req | floor CPU / ours |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for entities, conns, feast, native, bare in rows:
        for name, r in (("/get-online-features", feast), ("/rows", native), ("floor (bare MGET)", bare)):
            cpu = f"{r['cpu_us']:.0f} | {r['cpu_vs_floor']:.2f}" if "cpu_vs_floor" in r else "| "
            lines.append(
                f"| {entities} | {conns} | {name} | {r['p50_us'] / 1000:.2f} | {r['p99_us'] / 1000:.2f} | "
                f"{r['p99_vs_floor']:.2f} | {r['rps']:,.0f} | {r['rps_vs_floor']:.2f} | {cpu} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
