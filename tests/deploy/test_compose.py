"""docker-compose.yml and the Dockerfile, checked statically (no Docker engine here)."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC_DIR = Path(sys.prefix) / "compose-spec"


def compose_schema() -> dict[str, Any]:
    """The Compose Specification JSON schema, from the docker-compose wheel `make test` downloads."""
    wheels = glob.glob(str(SPEC_DIR / "docker_compose-*.whl"))
    if not wheels:
        SPEC_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(SPEC_DIR), "docker-compose==1.29.2"],
            check=True,
        )
        wheels = glob.glob(str(SPEC_DIR / "docker_compose-*.whl"))
    with zipfile.ZipFile(wheels[0]) as zf:
        return dict(json.loads(zf.read("compose/config/compose_spec.json")))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    import jsonschema

    errors = [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft7Validator(compose_schema()).iter_errors(compose)]
    assert errors == []


def test_services_redis_setup_and_scalable_server(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "setup", "server"}
    redis = services["redis"]
    assert "--requirepass" in redis["command"] and "--appendonly" in redis["command"]
    assert any(v.endswith(":/data") for v in redis["volumes"])
    setup = " ".join(services["setup"]["command"])
    for step in ("featurestore apply", "featurestore ingest", "featurestore materialize"):
        assert step in setup
    server = services["server"]
    assert server["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert "healthcheck" in server
    # replicas need an ephemeral host port, never a fixed one
    assert all(":" not in str(p) for p in server["ports"])
    assert server["environment"]["FEATURESTORE_ONLINE"].startswith("redis://:${REDIS_PASSWORD")


def test_no_secret_is_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "${REDIS_PASSWORD:?" in text  # required from the environment, no default
    assert "requirepass secret" not in text


def test_dockerfile_runs_as_non_root_with_a_health_check() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "\nUSER featurestore" in text
    assert "HEALTHCHECK" in text and "/health" in text
    assert text.splitlines()[0].startswith("#")
    assert os.path.isfile(ROOT / ".dockerignore")
