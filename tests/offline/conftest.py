"""Offline fixtures: the ``engine`` every contract test runs on, and the ``offline_files`` it reads.

One more engine is one factory in ``ENGINE_FACTORIES`` (its name joins ``ENGINE_PARAMS``);
one more storage (e.g. s3) is one class with ``write`` in ``STORAGE_FACTORIES``. Every test of
``test_engine_contract.py`` then runs over each (engine, storage) pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest

from featurestore.offline.base import OfflineEngine, OfflineFile


def _duckdb(repo: Path) -> OfflineEngine:
    from featurestore.offline.duckdb import DuckDBEngine

    return DuckDBEngine(repo, memory_limit="1GB")


def _duckdb_by_position(repo: Path) -> OfflineEngine:
    from featurestore.offline.duckdb import DuckDBEngine
    from featurestore.offline.duckdb_spill import PitPlan

    return DuckDBEngine(repo, memory_limit="1GB", pit_plan=PitPlan.BY_POSITION)  # the plan for small limits


def _spark(repo: Path) -> OfflineEngine:
    from featurestore.offline.spark import SparkEngine

    return SparkEngine(repo)  # the active session: the ``spark`` fixture's (local[2], one per run)


# name -> a function making the engine for a repository folder (sources resolve against it)
ENGINE_FACTORIES: dict[str, Callable[[Path], OfflineEngine]] = {
    "duckdb": _duckdb,
    "duckdb_by_position": _duckdb_by_position,
    "spark": _spark,
}
ENGINE_PARAMS = list(ENGINE_FACTORIES)
# Examples of the brute-force property test per engine: a Spark join costs ~a second on local[2].
PROPERTY_EXAMPLES = {"duckdb": 60, "spark": 12}  # by engine.name


class LocalFiles:
    """Offline files on local disk: ``write`` a frame as one Parquet file, get the reference the layout would list."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, df: pl.DataFrame) -> OfflineFile:
        path = self.root / f"{name}.parquet"
        df.write_parquet(path)
        return path


class S3Files(LocalFiles):
    """Offline files on the test S3 server (moto): each frame one object under a fresh ``s3://`` prefix."""

    def __init__(self, scratch: Path) -> None:
        import uuid

        from featurestore.storage import open_storage

        super().__init__(scratch)
        self.storage = open_storage(f"s3://featurestore-test/contract-{uuid.uuid4().hex[:12]}")

    def write(self, name: str, df: pl.DataFrame) -> OfflineFile:
        path = super().write(name, df)
        key = f"view/v=1/date=2024-01-01/{name}.parquet"
        self.storage.upload(Path(path), key)
        Path(path).unlink()  # only the object is left to read
        return self.storage.uri(key)


# name -> a function making the storage under a test's scratch folder
STORAGE_FACTORIES: dict[str, Callable[[Path], LocalFiles]] = {"local": LocalFiles, "s3": S3Files}
STORAGE_PARAMS = list(STORAGE_FACTORIES)


@pytest.fixture(params=ENGINE_PARAMS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OfflineEngine]:
    """Each engine in turn. ``@pytest.mark.notimpl(["spark"], raises=SomeError)`` says an engine
    cannot do what the test asks and raises that error (the test must then fail with it)."""
    for mark in request.node.iter_markers("notimpl"):
        if request.param in mark.args[0]:
            request.applymarker(pytest.mark.xfail(raises=mark.kwargs["raises"], strict=True, reason="not implemented"))
    if request.param == "spark":
        request.getfixturevalue("spark")
    made = ENGINE_FACTORIES[request.param](tmp_path)
    try:
        yield made
    finally:
        made.close()


# The DuckDB engine's window plans (frames with and without time buckets); every window test runs
# each (an engine without plans runs once).
WINDOW_PLANS = ["range_join", "frames", "frames_buckets"]


@pytest.fixture(params=WINDOW_PLANS)
def window_engine(engine: OfflineEngine, request: pytest.FixtureRequest) -> OfflineEngine:
    """``engine`` with each DuckDB window plan forced in turn (``window_plan``, ``window_buckets``)."""
    from featurestore.offline.duckdb import DuckDBEngine
    from featurestore.offline.duckdb_windows import WindowPlan

    if not isinstance(engine, DuckDBEngine):
        if request.param != WINDOW_PLANS[0]:
            pytest.skip(f"the {engine.name} engine has one window plan")
        return engine
    engine.window_plan = WindowPlan(request.param.removesuffix("_buckets"))
    engine.window_buckets = request.param.endswith("_buckets")
    return engine


@pytest.fixture(params=STORAGE_PARAMS)
def offline_files(request: pytest.FixtureRequest, tmp_path: Path) -> LocalFiles:
    if request.param == "s3":
        request.getfixturevalue("s3_server")  # the server, and the AWS variables pointing at it
    return STORAGE_FACTORIES[request.param](tmp_path / "offline")
