"""Benchmark: the web UI on a large repository: 200 views and a quarantine of 1 M rows.

Run: python -m benchmarks.ui [--quick] [--reps N]
The repository (generated once under benchmarks/.work/): 200 feature views over small sources, each
ingested once, and a view ``big`` whose 2 M-row source has 1 M rows failing its range check (all
quarantined by its gate). A ``featurestore ui`` server (auth off) answers over real HTTP; each JSON
endpoint a page needs is timed (first call after start-up, then the median of the next calls), and
when Debian's chromium is installed, each page is opened in it through Playwright and its own render
time (``body[data-ms]``: from the route starting to the page drawn, its API calls included) read.
The issue's bar is 300 ms per page.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks._util import median, workdir

__all__ = ["prepare", "measure", "table", "main"]

VIEWS = 200
DEFINITIONS = """
from datetime import timedelta

from featurestore import Entity, Feature, FeatureView, Float64, Gate, Int64, ParquetSource, in_range

item = Entity("item", join_keys={"item_id": Int64})

for _i in range(%(views)d):
    globals()[f"v{_i:03d}"] = FeatureView(
        f"v{_i:03d}",
        entities=[item],
        source=ParquetSource(f"data/small-{_i %% 20}.parquet", timestamp="ts"),
        features=[Feature("x", Float64, checks=[in_range(0, 100)]), Feature("y", Float64)],
        ttl=timedelta(days=1),
        description=f"view {_i} of the UI benchmark",
    )

big = FeatureView(
    "big",
    entities=[item],
    source=ParquetSource("data/big.parquet", timestamp="ts"),
    features=[Feature("x", Float64, checks=[in_range(0, 100)]), Feature("y", Float64)],
    gate=Gate("quarantine", max_bad_fraction=1.0),
    description="half of its rows fail in_range(0, 100) on x",
)
"""


def prepare(big_rows: int) -> Path:
    """The repository, generated and ingested once per size."""
    import numpy as np
    import polars as pl

    root = workdir(f"ui-{big_rows}")
    (root / "featurestore.toml").write_text('project = "ui_bench"\nonline = "sqlite:///data/online.db"\nauth = "off"\n')
    if (root / "data" / ".ready").is_file():
        return root
    from featurestore import FeatureStore

    (root / "definitions").mkdir(parents=True, exist_ok=True)
    (root / "definitions" / "__init__.py").touch()
    (root / "definitions" / "views.py").write_text(DEFINITIONS % {"views": VIEWS})
    data = root / "data"
    data.mkdir(exist_ok=True)
    rng = np.random.default_rng(7)
    start = pl.datetime(2026, 1, 1, time_zone="UTC")
    for i in range(20):
        n = 5_000
        pl.DataFrame({"item_id": np.arange(n), "x": rng.uniform(0, 100, n), "y": rng.normal(size=n)}).with_columns(
            ts=start + pl.duration(minutes=pl.col("item_id") % 1440)
        ).write_parquet(data / f"small-{i}.parquet")
    x = rng.uniform(0, 100, big_rows)
    x[: big_rows // 2] += 1_000  # half the rows out of range: quarantined
    pl.DataFrame({"item_id": np.arange(big_rows), "x": x, "y": rng.normal(size=big_rows)}).with_columns(
        ts=start + pl.duration(seconds=pl.col("item_id") % 86_400)
    ).write_parquet(data / "big.parquet")
    store = FeatureStore(root)
    store.apply()
    t = time.perf_counter()
    store.ingest()
    print(f"prepared {VIEWS + 1} views, {big_rows:,} rows in big, ingested in {time.perf_counter() - t:.1f} s")
    (data / ".ready").touch()
    return root


def _endpoints(page_from: int) -> dict[str, str]:
    return {
        "overview": "/ui/api/overview",
        "view": "/ui/api/views/v123",
        "quality": "/ui/api/quality/big",
        "quarantine first page": "/ui/api/quarantine/big?limit=50",
        "quarantine deep page": f"/ui/api/quarantine/big?offset={page_from}&limit=50",
        "quarantine filtered": "/ui/api/quarantine/big?check=in_range(0%2C%20100)&limit=50",
        "training sets": "/ui/api/training-sets",
    }


PAGES = {"overview": "#/", "view": "#/view/v123", "data quality": "#/quality/big", "training sets": "#/training"}


def _api(url: str, paths: dict[str, str], reps: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for name, path in paths.items():
            times = []
            for _ in range(reps + 1):
                t = time.perf_counter()
                resp = client.get(path)
                times.append(time.perf_counter() - t)
                if resp.status_code != 200:
                    raise RuntimeError(f"{path}: {resp.status_code} {resp.text[:200]}")
            out[name] = {"first_ms": times[0] * 1000, "median_ms": median(times[1:]) * 1000}
    return out


def _browser(url: str, reps: int) -> dict[str, dict[str, float]] | None:
    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)
    if chromium is None:
        return None
    from playwright.sync_api import sync_playwright

    flags = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    out: dict[str, dict[str, float]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=flags)
        page = browser.new_page()
        page.goto(url + "/ui")
        page.wait_for_selector("body[data-rendered='#/']", timeout=60_000)
        times: dict[str, list[float]] = {name: [] for name in PAGES}
        for _ in range(reps):  # pages in turn, as a user clicks through them: every visit renders anew
            for name, hash_ in PAGES.items():
                page.evaluate(f"location.hash = {hash_!r}")
                page.wait_for_selector(f"body[data-rendered='{hash_}']", state="attached", timeout=60_000)
                times[name].append(float(page.evaluate("document.body.dataset.ms")))
        for name, t in times.items():
            out[name] = {"first_ms": t[0], "median_ms": median(t[1:] or t)}
        browser.close()
    return out


def measure(big_rows: int = 1_000_000, reps: int = 5) -> dict[str, Any]:
    from benchmarks.online_http import _free_port, _start, _stop

    root = prepare(big_rows)
    found: dict[str, Any] = {}
    for what in ("api", "pages"):  # each on a server of its own: both first calls are a fresh server's
        port = _free_port()
        server = _start(["-m", "featurestore.cli.main", "ui", "--repo", str(root), "--port", str(port)], port)
        try:
            url = f"http://127.0.0.1:{port}"
            found[what] = _api(url, _endpoints(big_rows // 4), reps) if what == "api" else _browser(url, reps)
        finally:
            _stop(server)
    api, pages = found["api"], found["pages"]
    return {"views": VIEWS + 1, "quarantined": big_rows // 2, "api": api, "pages": pages}


def table(r: dict[str, Any]) -> list[str]:
    """The Markdown tables of one ``measure`` result."""
    out = [
        f"### Web UI: {r['views']} views, {r['quarantined']:,} quarantined rows in one view (bar: 300 ms a page)",
        "",
        "| JSON endpoint | first call ms | median ms |",
        "|---|---|---|",
    ]
    out += [f"| {name} | {m['first_ms']:.0f} | {m['median_ms']:.0f} |" for name, m in r["api"].items()]
    if r["pages"] is None:
        return [*out, "", "chromium is not installed: page render times not measured"]
    out += ["", "| page (in Chromium, API calls included) | first render ms | median ms |", "|---|---|---|"]
    out += [f"| {name} | {m['first_ms']:.0f} | {m['median_ms']:.0f} |" for name, m in r["pages"].items()]
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="a quarantine of 100,000 rows instead of 1 M")
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args(argv)
    print("\n".join(table(measure(200_000 if args.quick else 2_000_000, args.reps))))


if __name__ == "__main__":
    main()
