"""Discovering definitions; bad definitions stop with a DefinitionError naming module and object."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurestore.errors import DefinitionError
from featurestore.registry.discover import discover

HEADER = """\
from featurestore import Entity, Feature, FeatureService, FeatureView, Float64, Int64, ParquetSource, String
"""

ENTITY = (
    HEADER
    + """\
driver = Entity("driver", join_keys=["driver_id"])
"""
)


def view_src(name: str = "stats", entity: str = "driver", feature: str = "rate") -> str:
    return (
        f'{name} = FeatureView("{name}", entities=["{entity}"], source=ParquetSource("data/x.parquet"),\n'
        f'    features=[Feature("{feature}", Float64)])\n'
    )


def definitions_dir(repo: Path) -> Path:
    return repo / "definitions"


def test_discovers_entities_views_and_services(make_repo) -> None:
    repo = make_repo(
        {
            "entities.py": ENTITY,
            "views.py": HEADER
            + "from definitions.entities import driver\n"
            + view_src()
            + 'svc = FeatureService("model", features=[stats[["rate"]]])\n',
        }
    )
    defs = discover(definitions_dir(repo))
    assert sorted(defs.entities) == ["driver"]
    assert sorted(defs.views) == ["stats"]
    assert sorted(defs.services) == ["model"]
    assert defs.views["stats"].module == "definitions.views"
    assert defs.entities["driver"].module == "definitions.entities"
    assert defs.services["model"].references() == ["stats:rate"]


def test_duplicate_view_names_in_two_modules(make_repo) -> None:
    repo = make_repo({"a.py": ENTITY + view_src(), "b.py": HEADER + view_src(feature="other")})
    with pytest.raises(DefinitionError) as info:
        discover(definitions_dir(repo))
    msg = str(info.value)
    assert "duplicate feature view name 'stats'" in msg
    assert "definitions.a" in msg and "definitions.b" in msg
    assert info.value.obj == "stats"


def test_duplicate_entity_names(make_repo) -> None:
    repo = make_repo({"a.py": ENTITY, "b.py": ENTITY})
    with pytest.raises(DefinitionError, match="duplicate entity name 'driver'") as info:
        discover(definitions_dir(repo))
    assert "definitions.a" in str(info.value) and "definitions.b" in str(info.value)


def test_unknown_entity(make_repo) -> None:
    repo = make_repo({"entities.py": ENTITY, "views.py": HEADER + view_src(entity="rider")})
    with pytest.raises(DefinitionError) as info:
        discover(definitions_dir(repo))
    msg = str(info.value)
    assert "unknown entity 'rider'" in msg
    assert "module definitions.views" in msg
    assert "'stats'" in msg


def test_view_with_feature_named_like_a_join_key(make_repo) -> None:
    repo = make_repo({"views.py": ENTITY + view_src(feature="driver_id")})
    with pytest.raises(DefinitionError, match="clash with join keys") as info:
        discover(definitions_dir(repo))
    assert "definitions.views" in str(info.value) and "'stats'" in str(info.value)


def test_import_error_names_module_and_line(make_repo) -> None:
    repo = make_repo({"entities.py": ENTITY, "views.py": "import os\nimport no_such_module_xyz\n"})
    with pytest.raises(DefinitionError) as info:
        discover(definitions_dir(repo))
    msg = str(info.value)
    assert "module definitions.views" in msg
    assert "no_such_module_xyz" in msg
    assert "line 2 of views.py" in msg
    assert info.value.module == "definitions.views"


def test_syntax_error_names_module_and_line(make_repo) -> None:
    repo = make_repo({"entities.py": ENTITY, "broken.py": "x = 1\ny = 2\ndef f(:\n    pass\n"})
    with pytest.raises(DefinitionError) as info:
        discover(definitions_dir(repo))
    msg = str(info.value)
    assert "module definitions.broken" in msg
    assert "SyntaxError" in msg
    assert "line 3" in msg


def test_exception_in_module_names_module_and_line(make_repo) -> None:
    repo = make_repo({"entities.py": ENTITY, "views.py": "a = 1\nb = 2\nc = 3\nraise RuntimeError('boom here')\n"})
    with pytest.raises(DefinitionError) as info:
        discover(definitions_dir(repo))
    msg = str(info.value)
    assert "module definitions.views" in msg
    assert "RuntimeError: boom here" in msg
    assert "line 4 of views.py" in msg


def test_invalid_definition_object_names_module_and_line(make_repo) -> None:
    # A FeatureView with an empty feature list fails at construction, inside the user's module.
    src = ENTITY + 'v = FeatureView("v", entities=["driver"], source=ParquetSource("x.parquet"), features=[])\n'
    repo = make_repo({"views.py": src})
    with pytest.raises(DefinitionError) as info:
        discover(definitions_dir(repo))
    msg = str(info.value)
    assert "module definitions.views" in msg and "'v'" in msg and "line 3 of views.py" in msg


def test_service_using_a_view_not_defined_at_module_level(make_repo) -> None:
    src = (
        ENTITY
        + "def make():\n"
        + "    "
        + view_src(name="hidden").replace("\n    ", " ")
        + "    return hidden\n"
        + 'svc = FeatureService("model", features=[make()])\n'
    )
    repo = make_repo({"views.py": src})
    with pytest.raises(DefinitionError) as info:
        discover(definitions_dir(repo))
    msg = str(info.value)
    assert "module definitions.views" in msg
    assert "'model'" in msg
    assert "'hidden'" in msg
    assert "not defined at module level" in msg


def test_service_named_like_a_view(make_repo) -> None:
    repo = make_repo({"views.py": ENTITY + view_src() + 'svc = FeatureService("stats", features=[stats])\n'})
    with pytest.raises(DefinitionError, match="same name as a feature view"):
        discover(definitions_dir(repo))


@pytest.mark.parametrize(
    "hostile",
    [
        "x; DROP TABLE t",
        "a-b",
        'quo"te',
        "it's",
        "1starts_with_digit",
        "has space",
        "../escape",
        "",
        "x" * 64,
    ],
)
@pytest.mark.parametrize("where", ["entity", "join_key", "view", "feature", "service"])
def test_invalid_identifiers_are_rejected(make_repo, hostile: str, where: str) -> None:
    names = {"entity": "driver", "join_key": "driver_id", "view": "stats", "feature": "rate", "service": "model"}
    names[where] = hostile
    src = (
        HEADER
        + f"driver = Entity({names['entity']!r}, join_keys=[{names['join_key']!r}])\n"
        + f"stats = FeatureView({names['view']!r}, entities=[driver], source=ParquetSource('x.parquet'),\n"
        + f"    features=[Feature({names['feature']!r}, Float64)])\n"
        + f"svc = FeatureService({names['service']!r}, features=[stats])\n"
    )
    repo = make_repo({"views.py": src})
    with pytest.raises(DefinitionError) as info:
        discover(definitions_dir(repo))
    msg = str(info.value)
    assert "module definitions.views" in msg
    assert "not a valid identifier" in msg
    assert repr(hostile) in msg


def test_invalid_source_column_names_are_rejected(make_repo) -> None:
    src = ENTITY + 'stats = ParquetSource("x.parquet", timestamp="ts; DROP TABLE t")\n'
    repo = make_repo({"views.py": src})
    with pytest.raises(DefinitionError, match="not a valid identifier"):
        discover(definitions_dir(repo))


def test_valid_63_character_name_is_accepted(make_repo) -> None:
    long_name = "v" * 63
    repo = make_repo({"views.py": ENTITY + view_src(name=long_name)})
    assert list(discover(definitions_dir(repo)).views) == [long_name]


def test_modules_starting_with_underscore_are_skipped(make_repo) -> None:
    repo = make_repo(
        {
            "views.py": ENTITY + view_src(),
            "_scratch.py": "raise RuntimeError('must not be imported')\n",
            "_dupes.py": HEADER + view_src(feature="other") + view_src(name="extra"),
        }
    )
    defs = discover(definitions_dir(repo))
    assert sorted(defs.views) == ["stats"]
    assert [f.name for f in defs.views["stats"].features] == ["rate"]


def test_private_helper_imported_by_a_public_module_is_used(make_repo) -> None:
    views = HEADER + "from definitions._helpers import driver\n" + view_src()
    repo = make_repo({"_helpers.py": ENTITY, "views.py": views})
    defs = discover(definitions_dir(repo))
    assert sorted(defs.entities) == ["driver"] and sorted(defs.views) == ["stats"]


def test_subpackages_are_discovered(make_repo) -> None:
    repo = make_repo({"entities.py": ENTITY})
    sub = definitions_dir(repo) / "team"
    sub.mkdir()
    (sub / "__init__.py").touch()
    (sub / "views.py").write_text(HEADER + view_src())
    defs = discover(definitions_dir(repo))
    assert defs.views["stats"].module == "definitions.team.views"


def test_not_a_package(tmp_path: Path) -> None:
    (tmp_path / "defs").mkdir()
    with pytest.raises(DefinitionError, match="not a Python package"):
        discover(tmp_path / "defs")


def test_rediscovery_sees_edited_modules(make_repo) -> None:
    repo = make_repo({"views.py": ENTITY + view_src()})
    assert [f.name for f in discover(definitions_dir(repo)).views["stats"].features] == ["rate"]
    (definitions_dir(repo) / "views.py").write_text(ENTITY + view_src(feature="speed"))
    assert [f.name for f in discover(definitions_dir(repo)).views["stats"].features] == ["speed"]
