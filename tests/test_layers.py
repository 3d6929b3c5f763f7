"""The package is layered: a lower layer never imports a higher one (checked on every module's imports)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "featurestore"

# Each unit (a subpackage or a top-level module) and the units it may import. Bottom first:
# declarations and errors; then registry and validation; then the engines (offline) and the
# stores (online); then the serving layer; then the SDK facade, the server and the CLI.
BOTTOM = {"errors", "times", "dsl", "_version", "_optional", "storage"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "times": set(),
    "_version": set(),
    "_optional": {"errors"},
    "storage": {"errors", "_optional"},
    "dsl": {"errors", "times"},
    "config": BOTTOM,
    "registry": BOTTOM,
    "validation": BOTTOM | {"registry"},
    "offline": BOTTOM | {"registry", "validation"},
    "online": BOTTOM,
    "serving": BOTTOM | {"registry", "validation", "offline", "online"},
    "_progress": BOTTOM,
    "scaffold": BOTTOM | {"config"},
    "store": BOTTOM | {"config", "registry", "validation", "offline", "online", "serving", "_progress"},
    "client": BOTTOM | {"config", "serving"},
    "server": BOTTOM | {"config", "registry", "validation", "offline", "online", "serving"},
    # skew reads the server's served-feature log files: it sits above the server, beside the CLI
    "skew": BOTTOM | {"config", "registry", "validation", "offline", "server"},
    "cli": BOTTOM
    | {"config", "registry", "validation", "offline", "online", "serving", "store", "server", "scaffold", "skew"},
    "__init__": BOTTOM | {"config", "store"},
    "__main__": {"cli"},
}


def _unit(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_units(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "featurestore":
                found.add(parts[1] if len(parts) > 1 else "__init__")
    return found


def test_every_unit_has_a_place_in_the_layers() -> None:
    units = {_unit(p) for p in PACKAGE.rglob("*.py")}
    assert units <= set(ALLOWED), f"add {sorted(units - set(ALLOWED))} to ALLOWED with what they may import"


def test_no_module_imports_a_higher_layer() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = _unit(path)
        for target in _imported_units(path) - {unit}:
            if target not in ALLOWED.get(unit, set()):
                wrong.append(f"{path.relative_to(PACKAGE.parent)} imports featurestore.{target}")
    assert not wrong, "\n".join(wrong)


# Offline engines (the technology behind ``offline/base.py``'s contract): only their modules reach it.
ENGINE_LIBRARIES = {
    "duckdb": {"offline/duckdb.py"},
    "pyspark": {"offline/spark.py", "offline/spark_transform.py", "offline/spark_windows.py"},
}


def _imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
    return found


def test_only_engine_modules_import_an_engine_library() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for library, owners in ENGINE_LIBRARIES.items():
            if library in _imported_modules(path) and rel not in owners:
                wrong.append(f"featurestore/{rel} imports {library} (only {sorted(owners)} may)")
    assert not wrong, "\n".join(wrong)
