"""Feast's own SDK (0.67, ``online_store: type: remote``) against the server: reads, writes, push, materialize.

Feast never goes into this environment: the calls run in a Feast virtualenv's python
(``tests/server/_feast_sdk_child.py``), found through ``FEAST_PYTHON`` (``make test`` sets it to
``.venv-feast``, which it installs), ``.venv-feast`` or the benchmarks' one
(``benchmarks/.work/feast-venv``, made by ``python -m benchmarks.feast``). Skipped when there is none.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.test_feast_writes import make_repo
from tests.server.test_routes import running

HERE = Path(__file__).resolve().parent
MAKE_VENV = HERE.parents[1] / ".venv-feast" / "bin" / "python"
BENCH_VENV = HERE.parents[1] / "benchmarks" / ".work" / "feast-venv" / "bin" / "python"


def feast_python() -> Path | None:
    for candidate in (os.environ.get("FEAST_PYTHON"), MAKE_VENV, BENCH_VENV):
        if candidate and Path(candidate).is_file():
            probe = subprocess.run([candidate, "-c", "import feast"], capture_output=True)
            if probe.returncode == 0:
                return Path(candidate)
    return None


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    python = feast_python()
    if python is None:
        pytest.skip("no Feast virtualenv (set FEAST_PYTHON to one with feast installed)")
    root = make_repo(tmp_path_factory.mktemp("feastsdk") / "repo")
    with running(root) as url:
        proc = subprocess.run(
            [
                str(python),
                "-P",
                str(HERE / "_feast_sdk_child.py"),
                url,
                str(root / "feast"),
                str(root / "stats.parquet"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "FEAST_USAGE": "False", "PYTHONWARNINGS": "ignore"},
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield json.loads(proc.stdout.strip().splitlines()[-1])


def ok(calls: dict[str, Any], name: str) -> Any:
    assert "ok" in calls[name], f"{name}: {calls[name]}"
    return calls[name]["ok"]


def test_reads(calls: dict[str, Any]) -> None:
    assert ok(calls, "service") == {"driver_id": [701], "b": [70]}
    # Feast's FieldStatus numbers: PRESENT 1, NOT_FOUND 3 (the join key column is PRESENT).
    assert ok(calls, "statuses") == [[1, 1], [1, 3]]
    assert "error" in calls["unknown_feature"] and "404" in calls["unknown_feature"]["error"]


def test_write_to_online_store_and_push(calls: dict[str, Any]) -> None:
    ok(calls, "write_to_online_store")
    assert ok(calls, "read_after_write") == {"driver_id": [701, 702], "b": [7, 8]}
    ok(calls, "push")  # Feast's remote push posts /write-to-online-store
    assert ok(calls, "read_after_push") == {
        "driver_id": [701, 702, 9],
        "stats__a": [0.5, 1.5, None],
        "stats__b": [70, 80, None],
    }


def test_materialize_and_incremental(calls: dict[str, Any]) -> None:
    ok(calls, "materialize")  # Feast 0.67 posts /materialize to a remote online store's server
    assert ok(calls, "read_after_materialize") == {"rider_id": ["r1"], "n": [7]}
    ok(calls, "materialize_incremental")
