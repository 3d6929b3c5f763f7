"""Fuzz every operation of the HTTP API from its own OpenAPI schema (schemathesis): no 5xx, no hang."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from featurestore import FeatureStore
from featurestore.server.auth import hash_key
from tests.conftest import write_repo
from tests.server.test_routes import running
from tests.test_materialize import build

schemathesis = pytest.importorskip("schemathesis")

KEY = "fs_fuzz_key"
EXAMPLES = 40  # per operation: bounded so the suite stays fast
MAX_SECONDS = 5.0


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("fuzz")

    make_repo = functools.partial(write_repo, base / "repo")

    root = build(make_repo, "sqlite:///data/online.db")
    FeatureStore(root).materialize()
    keys = json.dumps([{"name": "fuzz", "sha256": hash_key(KEY), "push": True}])
    with running(root, auth="on", api_keys=keys, max_body_bytes="20000") as url:
        yield url


def operations(url: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def test_no_operation_answers_5xx_or_hangs(base_url: str) -> None:
    from hypothesis import HealthCheck, given, settings

    ops = operations(base_url)
    assert {op.path for op in ops} >= {"/get-online-features", "/rows", "/push", "/reports", "/metrics"}
    failures: list[str] = []
    seen: list[int] = []

    def fuzz_operation(op: Any) -> None:
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def fuzz(case: Any) -> None:
            for headers in ({"X-API-Key": KEY}, {}):
                t0 = time.monotonic()
                response = case.call(base_url=base_url, headers=headers, timeout=MAX_SECONDS)
                took = time.monotonic() - t0
                seen.append(response.status_code)
                if response.status_code >= 500 or took > MAX_SECONDS:
                    failures.append(f"{op.method.upper()} {op.path} -> {response.status_code} in {took:.2f}s")

        fuzz()

    for op in ops:
        fuzz_operation(op)
    assert not failures, failures[:10]
    assert len(seen) >= 10 * len(ops) and {200, 401, 422} <= set(seen), sorted(set(seen))


def test_parameter_errors_are_documented_as_answered(base_url: str) -> None:
    """A 422 for a bad query parameter is one "detail" string, and the schema says so for every operation."""
    import httpx

    schema = httpx.get(base_url + "/openapi.json").json()
    assert "HTTPValidationError" not in json.dumps(schema)
    documented = [
        op["responses"]["422"]["content"]["application/json"]["schema"]
        for ops in schema["paths"].values()
        for op in ops.values()
        if "422" in op.get("responses", {}) and "content" in op["responses"]["422"]
    ]
    assert documented and all(s == {"$ref": "#/components/schemas/ErrorResponse"} for s in documented)
    answer = httpx.get(base_url + "/reports", params={"limit": "many"}, headers={"X-API-Key": KEY})
    assert answer.status_code == 422
    assert isinstance(answer.json()["detail"], str) and "limit" in answer.json()["detail"]
