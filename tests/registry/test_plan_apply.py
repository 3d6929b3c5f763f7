"""Plan and apply: diffs, the registry file, breaking changes, version hashes and concurrent applies."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from featurestore import BreakingChangeError, FeatureStore
from featurestore.offline.layout import OfflineLayout
from featurestore.registry.discover import discover
from featurestore.registry.spec import build_specs

ENTITIES = """
from featurestore import Entity, String
driver = Entity("driver", join_keys=["driver_id"])
route = Entity("route", join_keys={"origin": String, "dest": String})
"""

VIEWS = """
from datetime import timedelta
import polars as pl
from featurestore import Feature, FeatureService, FeatureView, Float64, Int32, Int64, String, ParquetSource, in_range
from definitions.entities import driver

stats = FeatureView(
    "stats",
    entities=[driver],
    source=ParquetSource("{path}", created="created"),
    features=[{features}],
    ttl=timedelta(days=2),
    transform={transform},
    description="{description}",
    tags={tags},
)
model = FeatureService("model", features=[stats])
"""

FEATURES = 'Feature("rate", Float64), Feature("trips", Int64)'


def views_src(
    features: str = FEATURES,
    path: str = "data/stats.parquet",
    transform: str = "None",
    description: str = "driver stats",
    tags: str = "{}",
) -> str:
    return VIEWS.format(features=features, path=path, transform=transform, description=description, tags=tags)


def write_module(repo: Path, name: str, text: str) -> None:
    pkg = repo / "definitions"
    (pkg / name).write_text(textwrap.dedent(text))
    # A rewrite within the same second and of the same size could otherwise reuse stale bytecode.
    shutil.rmtree(pkg / "__pycache__", ignore_errors=True)


def remove_module(repo: Path, name: str) -> None:
    (repo / "definitions" / name).unlink()
    shutil.rmtree(repo / "definitions" / "__pycache__", ignore_errors=True)


@pytest.fixture
def repo(make_repo) -> Path:
    root = make_repo({"entities.py": ENTITIES, "views.py": views_src()})
    (root / "data").mkdir()
    pl.DataFrame(
        {
            "driver_id": [1, 2, 1],
            "event_timestamp": [datetime(2024, 1, 1, 10), datetime(2024, 1, 1, 11), datetime(2024, 1, 2, 9)],
            "created": [datetime(2024, 1, 1, 10), datetime(2024, 1, 1, 11), datetime(2024, 1, 2, 9)],
            "rate": [0.5, 0.25, 0.75],
            "trips": [3, 4, 5],
        }
    ).write_parquet(root / "data" / "stats.parquet")
    return root


def registry_json(store: FeatureStore) -> dict:
    return json.loads(store.settings.registry.read_text())


def changes(plan) -> dict[tuple[str, str], tuple[str, tuple[str, ...], bool]]:
    return {(c.kind, c.name): (c.action, c.details, c.breaking) for c in plan.changes}


def test_plan_on_an_empty_registry_adds_everything_and_writes_nothing(repo: Path) -> None:
    store = FeatureStore(repo)
    plan = store.plan()
    assert changes(plan) == {
        ("entity", "driver"): ("add", (), False),
        ("entity", "route"): ("add", (), False),
        ("view", "stats"): ("add", (), False),
        ("service", "model"): ("add", (), False),
    }
    assert not store.settings.registry.exists()


def test_apply_writes_a_sorted_human_readable_registry(repo: Path) -> None:
    store = FeatureStore(repo)
    store.apply()
    text = store.settings.registry.read_text()
    data = json.loads(text)
    # Indented and key-sorted, so it diffs well in git.
    assert text == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert data["project"] == "test"
    assert data["serial"] == 1
    assert sorted(data["entities"]) == ["driver", "route"]
    assert data["entities"]["route"]["join_keys"] == {"origin": "String", "dest": "String"}
    view = data["views"]["stats"]
    assert view["join_keys"] == {"driver_id": "Int64"}
    assert [(f["name"], f["dtype"]) for f in view["features"]] == [("rate", "Float64"), ("trips", "Int64")]
    assert view["ttl_seconds"] == 2 * 86400
    assert view["module"] == "definitions.views"
    assert data["services"]["model"]["features"] == ["stats:rate", "stats:trips"]
    assert data["versions"]["stats"] == {view["version"]: view}
    assert [h["serial"] for h in data["history"]] == [1]
    assert data["history"][0]["views"] == {"stats": view["version"]}
    assert "add view stats" in data["history"][0]["changes"]


def test_apply_again_without_changes_is_a_no_op(repo: Path) -> None:
    store = FeatureStore(repo)
    store.apply()
    before = store.settings.registry.read_bytes()
    assert store.plan().empty
    assert store.apply().empty
    assert store.settings.registry.read_bytes() == before


def test_plan_and_apply_a_changed_view(repo: Path) -> None:
    store = FeatureStore(repo)
    store.apply()
    old_version = store.state().view("stats").version
    write_module(repo, "views.py", views_src(features=FEATURES + ', Feature("speed", Float64)'))
    plan = store.plan(data_check=False)  # the source has no speed column: the diff is what is tested here
    action, details, breaking = changes(plan)[("view", "stats")]
    assert action == "change" and not breaking
    assert "feature speed added (Float64)" in details
    assert any(d.startswith(f"version {old_version} -> ") for d in details)
    assert set(changes(plan)) == {("view", "stats"), ("service", "model")}  # the service gains stats:speed

    store.apply(data_check=False)
    data = registry_json(store)
    assert data["serial"] == 2
    assert [h["serial"] for h in data["history"]] == [1, 2]
    new_version = data["views"]["stats"]["version"]
    assert new_version != old_version
    assert set(data["versions"]["stats"]) == {old_version, new_version}
    assert data["history"][1]["views"] == {"stats": new_version}
    assert data["services"]["model"]["features"] == ["stats:rate", "stats:trips", "stats:speed"]


def test_removed_objects_are_removed(repo: Path) -> None:
    store = FeatureStore(repo)
    store.apply()
    only_driver = 'from featurestore import Entity\ndriver = Entity("driver", join_keys=["driver_id"])\n'
    write_module(repo, "entities.py", only_driver)
    remove_module(repo, "views.py")
    plan = store.plan()
    assert changes(plan) == {
        ("entity", "route"): ("remove", (), False),
        ("view", "stats"): ("remove", (), False),
        ("service", "model"): ("remove", (), False),
    }
    store.apply()
    data = registry_json(store)
    assert list(data["entities"]) == ["driver"]
    assert data["views"] == {}
    assert data["services"] == {}
    assert store.state().views == {}
    assert data["serial"] == 2
    # History keeps the removed view's version.
    assert "stats" in data["versions"]


def test_changed_entity_and_service_are_listed(repo: Path) -> None:
    store = FeatureStore(repo)
    store.apply()
    write_module(
        repo,
        "entities.py",
        ENTITIES.replace('route = Entity("route", join_keys={"origin": String, "dest": String})', "")
        + 'route = Entity("route", join_keys={"origin": String, "dest": String}, description="a route")\n',
    )
    write_module(repo, "views.py", views_src().replace("features=[stats]", 'features=[stats[["rate"]]]'))
    got = changes(store.plan())
    assert got[("entity", "route")] == ("change", ("description changed",), False)
    assert got[("service", "model")] == ("change", ("features changed",), False)
    assert ("view", "stats") not in got


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        ('Feature("rate", Float64)', "feature trips removed"),
        ('Feature("rate", Float64), Feature("trips", String)', "feature trips dtype Int64 -> String"),
    ],
)
def test_breaking_change_is_refused_and_writes_nothing(repo: Path, features: str, expected: str) -> None:
    store = FeatureStore(repo)
    store.apply()
    before = store.settings.registry.read_bytes()
    write_module(repo, "views.py", views_src(features=features))
    plan = store.plan(data_check=False)  # the data contradicts a String trips: the breaking diff is tested here
    action, details, breaking = changes(plan)[("view", "stats")]
    assert action == "change" and breaking and expected in details
    assert plan.breaking
    with pytest.raises(BreakingChangeError) as info:
        store.apply(data_check=False)
    assert "stats" in str(info.value) and expected in str(info.value)
    assert "allow" in str(info.value)
    assert store.settings.registry.read_bytes() == before


def test_allow_breaking_keeps_the_old_version_and_its_offline_data(repo: Path) -> None:
    store = FeatureStore(repo)
    store.apply()
    store.ingest()
    old = store.state().view("stats")
    old_files = OfflineLayout(store.settings.offline_root).files("stats", old.version)
    assert old_files

    write_module(repo, "views.py", views_src(features='Feature("rate", Float64), Feature("trips", Float64)'))
    store.apply(allow_breaking=True)
    state = store.state()
    new = state.view("stats")
    assert new.version != old.version
    assert str(new.features["trips"]) == "Float64"
    # The old version's spec stays in `versions` ...
    kept = state.view("stats", old.version)
    assert kept.raw == old.raw
    assert str(kept.features["trips"]) == "Int64"
    assert set(registry_json(store)["versions"]["stats"]) == {old.version, new.version}
    # ... and its Parquet data stays where it was, readable.
    layout = OfflineLayout(store.settings.offline_root)
    assert layout.files("stats", old.version) == old_files
    rows = duckdb.sql(
        f"SELECT driver_id, trips FROM read_parquet('{layout.glob('stats', old.version)}') ORDER BY ALL"
    ).fetchall()
    assert rows == [(1, 3), (1, 5), (2, 4)]
    assert layout.files("stats", new.version) == []
    store.ingest()
    assert layout.files("stats", new.version)
    assert layout.files("stats", old.version) == old_files


def version_of(make_repo, name: str, **kwargs) -> str:
    root = make_repo({"entities.py": ENTITIES, "views.py": views_src(**kwargs)}, name=name)
    return build_specs(discover(root / "definitions"))["views"]["stats"]["version"]


def test_version_hash_changes_with_what_changes_the_data(make_repo) -> None:
    base = version_of(make_repo, "base")
    assert version_of(make_repo, "same") == base
    data_changes = {
        "source": {"path": "data/other.parquet"},
        "transform": {"transform": "lambda lf: lf.filter(pl.col('rate') > 0)"},
        "schema": {"features": 'Feature("rate", Float64), Feature("trips", Int32)'},
        "new_feature": {"features": FEATURES + ', Feature("x", Float64)'},
        "sql_transform": {"transform": '"SELECT * FROM source"'},
    }
    for label, kwargs in data_changes.items():
        assert version_of(make_repo, label, **kwargs) != base, label


def test_version_hash_ignores_description_tags_and_checks(make_repo) -> None:
    base = version_of(make_repo, "base")
    same = {
        "description": {"description": "something else entirely"},
        "tags": {"tags": '{"team": "ml"}'},
        "checks": {"features": 'Feature("rate", Float64, checks=[in_range(0, 1)]), Feature("trips", Int64)'},
        "feature_description": {"features": 'Feature("rate", Float64, description="d"), Feature("trips", Int64)'},
    }
    for label, kwargs in same.items():
        assert version_of(make_repo, label, **kwargs) == base, label


def test_metadata_change_is_planned_but_keeps_the_version(repo: Path) -> None:
    store = FeatureStore(repo)
    store.apply()
    version = store.state().view("stats").version
    write_module(repo, "views.py", views_src(description="new words"))
    action, details, breaking = changes(store.plan())[("view", "stats")]
    assert (action, breaking) == ("change", False)
    assert "description changed" in details
    store.apply()
    assert store.state().view("stats").version == version
    assert store.state().view("stats").raw["description"] == "new words"
    assert registry_json(store)["serial"] == 2


CONCURRENT_APPLY = """
import sys
from featurestore import FeatureStore
store = FeatureStore(sys.argv[1])
for _ in range(int(sys.argv[2])):
    store.apply(data_check=False)  # no source data: the registry file's locking is tested
"""


def test_concurrent_applies_never_corrupt_the_registry(make_repo, tmp_path: Path) -> None:
    registry = tmp_path / "shared" / "registry.json"
    config = f'project = "test"\nregistry = "{registry}"\n'
    repos = []
    for name in ("alpha", "beta"):
        view = (
            "from featurestore import Entity, Feature, FeatureView, Float64, ParquetSource\n"
            f'e_{name} = Entity("e_{name}", join_keys=["k"])\n'
            f'v_{name} = FeatureView("v_{name}", entities=[e_{name}], source=ParquetSource("x.parquet"),\n'
            f'    features=[Feature("f", Float64)])\n'
        )
        repos.append(make_repo({"views.py": view}, config=config, name=name))
    rounds = 6
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_APPLY, str(r), str(rounds)], stderr=subprocess.PIPE)
        for r in repos
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    data = json.loads(registry.read_text())
    serials = [h["serial"] for h in data["history"]]
    assert serials == list(range(1, data["serial"] + 1))
    assert data["serial"] >= 2
    applied = {name for h in data["history"] for name in h["views"]}
    assert applied == {"v_alpha", "v_beta"}
    # The last writer's definitions are the current ones; both views' versions are kept.
    assert set(data["versions"]) == {"v_alpha", "v_beta"}
    assert len(data["views"]) == 1
    assert not list(registry.parent.glob(".registry-*"))  # no temp files left behind
