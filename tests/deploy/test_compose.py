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
    services = {name: s for name, s in compose["services"].items() if "profiles" not in s}
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


def test_cluster_profile_six_nodes_a_create_job_and_a_server(compose: dict[str, Any]) -> None:
    from featurestore.online import open_online_store
    from featurestore.online.redis_cluster import RedisClusterOnlineStore

    cluster = {name: s for name, s in compose["services"].items() if s.get("profiles") == ["cluster"]}
    nodes = [f"redis-node-{i}" for i in range(1, 7)]
    assert set(cluster) == {*nodes, "cluster-create", "setup-cluster", "server-cluster"}
    for name in nodes:
        node = cluster[name]
        command = " ".join(node["command"])
        for flag in ("--cluster-enabled yes", "--requirepass", "--masterauth", "--appendonly yes"):
            assert flag in command
        assert node["hostname"] == name and f"{name}:/data" in node["volumes"]
        assert "healthcheck" in node
    create = cluster["cluster-create"]
    assert "--cluster create" in create["command"][2] and "--cluster-replicas 1" in create["command"][2]
    assert all(create["depends_on"][n]["condition"] == "service_healthy" for n in nodes)
    assert cluster["setup-cluster"]["depends_on"]["cluster-create"]["condition"] == "service_completed_successfully"
    server = cluster["server-cluster"]
    assert server["depends_on"]["setup-cluster"]["condition"] == "service_completed_successfully"
    assert all(":" not in str(p) for p in server["ports"]) and "healthcheck" in server
    url = server["environment"]["FEATURESTORE_ONLINE"]
    assert url == cluster["setup-cluster"]["environment"]["FEATURESTORE_ONLINE"]
    # the URL the server gets is one the store accepts, naming three seed nodes
    store = open_online_store(url.replace("${REDIS_PASSWORD:?set REDIS_PASSWORD}", "pw"), "p")
    assert isinstance(store, RedisClusterOnlineStore)
    assert [h for h, _ in store.config.seeds] == nodes[:3] and store.config.password == "pw"


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
