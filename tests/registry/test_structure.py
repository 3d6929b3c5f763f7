"""A registry file that is JSON but not a registry is refused on load, naming the bad part."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from featurestore import FeatureStore, RegistryError
from featurestore.cli.main import app
from featurestore.registry.store import Registry

VIEWS = """
from featurestore import Entity, Feature, FeatureService, FeatureView, Float64, Int64, ParquetSource
driver = Entity("driver", join_keys={"driver_id": Int64})
stats = FeatureView("stats", [driver], ParquetSource("stats.parquet"), [Feature("a", Float64)])
svc = FeatureService("svc", features=[stats])
"""


def good_registry(make_repo: Any) -> tuple[Path, dict[str, Any]]:
    root = make_repo({"views.py": VIEWS})
    FeatureStore(root).apply(data_check=False)  # no data: the registry is what is tested
    path = root / "data" / "registry.json"
    return path, orjson.loads(path.read_bytes())


def _view(data: dict[str, Any]) -> dict[str, Any]:
    return data["views"]["stats"]  # type: ignore[no-any-return]


# (what is wrong, how to break a good registry, words the error must name)
BROKEN: list[tuple[str, Any, list[str]]] = [
    ("views is a list", lambda d: d.update(views=[]), ["views", "must be an object", "a list"]),
    ("a view is a string", lambda d: d["views"].update(stats="stats"), ["views['stats']", "a string"]),
    ("a view name is not an identifier", lambda d: d["views"].update({"a b": _view(d)}), ["views['a b']", "'a b'"]),
    ("view name differs from its key", lambda d: _view(d).update(name="other"), ["views['stats'].name", "'other'"]),
    ("features is an object", lambda d: _view(d).update(features={}), ["views['stats'].features", "a list"]),
    ("a feature has no name", lambda d: _view(d)["features"][0].pop("name"), ["views['stats'].features[0].name"]),
    ("unknown dtype", lambda d: _view(d)["features"][0].update(dtype="Int65"), ["features[0].dtype", "Int65"]),
    ("join keys are a list", lambda d: _view(d).update(join_keys=["driver_id"]), ["views['stats'].join_keys"]),
    ("ttl is text", lambda d: _view(d).update(ttl_seconds="1d"), ["views['stats'].ttl_seconds", "'1d'"]),
    ("entities is a list", lambda d: d.update(entities=["driver"]), ["entities", "a list"]),
    ("service features is text", lambda d: d["services"]["svc"].update(features="stats:a"), ["services['svc']"]),
    ("a version is a number", lambda d: next(iter(d["versions"].values())).update(x=1), ["versions['stats']['x']"]),
    ("history is an object", lambda d: d.update(history={}), ["history", "a list"]),
    ("serial is text", lambda d: d.update(serial="3"), ["serial", "'3'"]),
]


@pytest.mark.parametrize(("what", "damage", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_malformed_registry_is_refused_naming_the_bad_part(
    make_repo: Any, what: str, damage: Any, words: list[str]
) -> None:
    path, data = good_registry(make_repo)
    damage(data)
    path.write_bytes(orjson.dumps(data))
    with pytest.raises(RegistryError) as info:
        Registry(path).load()
    message = str(info.value)
    assert str(path) in message and "malformed" in message
    for word in words:
        assert word in message, (word, message)


def test_the_minimal_bad_file_from_the_issue(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    path.write_bytes(b'{"format": 1, "views": []}')
    with pytest.raises(RegistryError, match=r"views: must be an object, not a list"):
        Registry(path).load()


def test_a_good_registry_still_loads(make_repo: Any) -> None:
    path, _ = good_registry(make_repo)
    state = Registry(path).load()
    assert list(state.views) == ["stats"] and state.serial == 1


def test_apply_over_a_malformed_registry_reports_it_and_writes_nothing(make_repo: Any) -> None:
    path, data = good_registry(make_repo)
    path.write_bytes(b'{"format": 1, "views": {"stats": "stats"}}')
    with pytest.raises(RegistryError, match=r"views\['stats'\]: must be an object"):
        FeatureStore(path.parent.parent).apply()
    assert path.read_bytes() == b'{"format": 1, "views": {"stats": "stats"}}'
    result = CliRunner().invoke(app, ["apply", "-r", str(path.parent.parent)])
    assert result.exit_code == 1 and result.exception is not None and not isinstance(result.exception, AttributeError)
    assert "RegistryError" in result.output and "views['stats']" in result.output
    assert "Traceback" not in result.output
