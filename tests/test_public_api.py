"""The public facade: featurestore.__all__ is curated, and every module has a docstring and __all__."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import featurestore

EXPECTED = {
    # definitions API
    "Entity",
    "Feature",
    "FeatureView",
    "FeatureService",
    "ParquetSource",
    "CsvSource",
    "SqlSource",
    # dtypes
    "DType",
    "Int64",
    "Int32",
    "Float64",
    "Float32",
    "String",
    "Aggregation",
    "Bool",
    "Timestamp",
    "List",
    # SDK and config
    "FeatureStore",
    "Settings",
    "load_settings",
    # errors
    "FeatureStoreError",
    "ConfigError",
    "DefinitionError",
    "RegistryError",
    "BreakingChangeError",
    "IngestError",
    "TrainingSetError",
}


def test_all_contains_the_expected_names() -> None:
    missing = EXPECTED - set(featurestore.__all__)
    assert not missing, f"missing from featurestore.__all__: {sorted(missing)}"


def test_all_has_no_duplicates() -> None:
    assert len(featurestore.__all__) == len(set(featurestore.__all__))


@pytest.mark.parametrize("name", sorted(featurestore.__all__))
def test_every_exported_name_is_importable(name: str) -> None:
    module = importlib.import_module("featurestore")
    assert getattr(module, name, None) is not None, f"featurestore.{name} is exported but not defined"
    ns: dict[str, object] = {}
    exec(f"from featurestore import {name}", ns)
    assert ns[name] is getattr(featurestore, name)


def test_errors_form_one_family() -> None:
    for name in ("ConfigError", "DefinitionError", "RegistryError", "IngestError", "TrainingSetError"):
        assert issubclass(getattr(featurestore, name), featurestore.FeatureStoreError)
    assert issubclass(featurestore.BreakingChangeError, featurestore.RegistryError)


def test_dtypes_are_dtype_values() -> None:
    for name in ("Int64", "Int32", "Float64", "Float32", "String", "Bool", "Timestamp"):
        dtype = getattr(featurestore, name)
        assert isinstance(dtype, featurestore.DType)
        assert str(dtype) == name
    assert str(featurestore.List(featurestore.Float64)) == "List(Float64)"


def _all_modules() -> list[str]:
    names = ["featurestore"]
    for info in pkgutil.walk_packages(featurestore.__path__, prefix="featurestore."):
        names.append(info.name)
    return sorted(names)


def test_module_walk_finds_the_foundation() -> None:
    found = set(_all_modules())
    for name in (
        "featurestore.config",
        "featurestore.store",
        "featurestore.registry.discover",
        "featurestore.registry.store",
        "featurestore.offline.ingest",
        "featurestore.offline.training",
        "featurestore.cli.main",
    ):
        assert name in found


@pytest.mark.parametrize("module_name", _all_modules())
def test_every_module_has_a_docstring_and_all(module_name: str) -> None:
    module = importlib.import_module(module_name)
    doc = (module.__doc__ or "").strip()
    assert doc, f"{module_name} has no module docstring"
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list | tuple), f"{module_name} does not declare __all__"
    for name in exported:
        assert hasattr(module, name), f"{module_name}.__all__ names {name!r}, which it does not define"
