"""The docs cannot rot: their runnable Python blocks run against the example repository they describe."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
# A marker line before a fenced block: "<!-- runnable -->" runs it, "<!-- file: PATH -->" writes it to PATH.
BLOCK = re.compile(r"<!-- (runnable|file: (?P<path>[^ ]+)) -->\n```(?P<lang>\w+)\n(?P<code>.*?)\n```", re.S)
SETUP_PAGE = "concepts.md"


def blocks(page: str) -> list[tuple[str | None, str]]:
    """(path or None, code) of every marked block of a page, in order."""
    text = (DOCS / page).read_text()
    return [(m["path"], m["code"]) for m in BLOCK.finditer(text)]


def run_page(page: str, repo: Path) -> None:
    namespace: dict[str, Any] = {"__name__": f"docs_{page}"}
    for path, code in blocks(page):
        if path is not None:
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            (repo / path).write_text(code + "\n")
        else:
            exec(compile(code, f"docs/{page}", "exec"), namespace)  # noqa: S102 - the docs' own examples


@pytest.fixture
def example_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example repository of the docs, built and applied from the blocks of concepts.md."""
    repo = tmp_path / "drivers"
    (repo / "definitions").mkdir(parents=True)
    (repo / "data").mkdir()
    (repo / "featurestore.toml").write_text('project = "drivers"\n')
    (repo / "definitions" / "__init__.py").touch()
    monkeypatch.chdir(repo)
    monkeypatch.syspath_prepend(str(repo))
    for name in [m for m in list(__import__("sys").modules) if m == "definitions" or m.startswith("definitions.")]:
        monkeypatch.delitem(__import__("sys").modules, name)
    run_page(SETUP_PAGE, repo)
    return repo


PAGES = sorted(p.name for p in DOCS.glob("*.md") if p.name != SETUP_PAGE and "<!-- runnable -->" in p.read_text())


def test_every_page_is_in_the_site_navigation() -> None:
    nav = (DOCS.parent / "mkdocs.yml").read_text()
    for page in DOCS.glob("*.md"):
        assert f": {page.name}" in nav, f"{page.name} is not in mkdocs.yml nav"


def test_the_setup_page_builds_the_example_repository(example_repo: Path) -> None:
    assert (example_repo / "data" / "registry.json").is_file()
    assert (example_repo / "data" / "online.db").is_file()


@pytest.mark.parametrize("page", PAGES)
def test_runnable_blocks_of_a_page_run(example_repo: Path, page: str) -> None:
    assert blocks(page), f"{page} has no runnable block"
    run_page(page, example_repo)
    assert Path(os.getcwd()) == example_repo
