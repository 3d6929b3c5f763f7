"""Security invariants: hostile identifiers are refused, nothing is unpickled or evaluated."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from featurestore import Entity, Feature, FeatureView, Float64, ParquetSource
from featurestore.dsl.names import check_identifier, quote

PACKAGE = Path(__file__).resolve().parents[1] / "featurestore"

HOSTILE = [
    'x"; DROP TABLE t; --',
    "a-b",
    "1abc",
    "",
    "name with space",
    "x' OR '1'='1",
    "../etc/passwd",
    "über",
    "a" * 64,
    "x\x00",
    "fs:{key}",
    "trailing_newline\n",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_everywhere(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid identifier"):
        check_identifier(name, "thing")
    with pytest.raises(ValueError):
        quote(name)
    with pytest.raises(ValueError):
        Entity(name, join_keys=["id"])
    with pytest.raises(ValueError):
        Entity("e", join_keys=[name])
    with pytest.raises(ValueError):
        Feature(name, Float64)
    with pytest.raises(ValueError):
        FeatureView(name, ["e"], ParquetSource("x.parquet"), [Feature("f", Float64)])
    with pytest.raises(ValueError):
        ParquetSource("x.parquet", timestamp=name)


def test_a_quoted_path_cannot_break_out_of_the_sql_string(tmp_path: Path) -> None:
    from featurestore.offline.duckdb import duckdb_connection, source_relation

    src = ParquetSource("it's'); SELECT 1; --.parquet")
    sql = source_relation(src, tmp_path)
    con = duckdb_connection("256MB")
    with pytest.raises(Exception, match="No files found|does not exist|IO Error"):
        con.sql(f"SELECT * FROM {sql}").fetchall()


def _calls(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.id if isinstance(f, ast.Name) else getattr(f, "attr", ""))
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            names.update(f"import {m}" for m in mods if m)
    return names


def test_no_pickle_eval_or_exec_in_the_package() -> None:
    banned = {"eval", "exec", "import pickle", "import dill", "import cloudpickle", "import marshal", "import shelve"}
    found = {}
    for path in PACKAGE.rglob("*.py"):
        hits = _calls(ast.parse(path.read_text())) & banned
        if hits:
            found[str(path.relative_to(PACKAGE))] = sorted(hits)
    assert found == {}
