"""The registry file's structure, checked on every load so a hand-edited or foreign file fails clearly."""

from __future__ import annotations

from typing import Any

from featurestore.dsl.names import IDENTIFIER
from featurestore.dsl.types import dtype_from_name
from featurestore.errors import RegistryError

__all__ = ["check_registry"]


class _ShapeError(Exception):
    """A structural fault at ``where`` (a path like ``views['stats'].features[2].dtype``)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _ShapeError(where, f"must be an object, not {_kind(value)}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _ShapeError(where, f"must be a list, not {_kind(value)}")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _ShapeError(where, f"must be a string, not {_kind(value)}")
    return value


def _name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise _ShapeError(where, f"name {name!r} is not an identifier (letters, digits and '_', at most 63 characters)")
    return name


def _dtype(value: Any, where: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    try:
        dtype_from_name(_str(value, where))
    except ValueError as exc:
        raise _ShapeError(where, str(exc)) from None


def _named(mapping: Any, where: str) -> dict[str, Any]:
    """An object whose keys are identifiers and whose values are objects."""
    for name, value in _obj(mapping, where).items():
        _name(name, f"{where}[{name!r}]")
        _obj(value, f"{where}[{name!r}]")
    return mapping  # type: ignore[no-any-return]


def _join_keys(value: Any, where: str, *, untyped: bool) -> None:
    for key, dtype in _obj(value, where).items():
        _name(key, f"{where}[{key!r}]")
        _dtype(dtype, f"{where}[{key!r}]", optional=untyped)


def _view(spec: dict[str, Any], name: str, where: str) -> None:
    if spec.get("name") != name:
        raise _ShapeError(f"{where}.name", f"is {spec.get('name')!r}, expected {name!r}")
    _str(spec.get("version"), f"{where}.version")
    _join_keys(spec.get("join_keys"), f"{where}.join_keys", untyped=False)
    for i, feature in enumerate(_list(spec.get("features"), f"{where}.features")):
        at = f"{where}.features[{i}]"
        _name(_obj(feature, at).get("name"), f"{at}.name")
        _dtype(feature.get("dtype"), f"{at}.dtype")
    ttl = spec.get("ttl_seconds")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl < 0):
        raise _ShapeError(f"{where}.ttl_seconds", f"must be null or a number of seconds >= 0, not {ttl!r}")
    if not isinstance(spec.get("online", True), bool):
        raise _ShapeError(f"{where}.online", "must be true or false")
    for i, entity in enumerate(_list(spec.get("entities", []), f"{where}.entities")):
        _str(entity, f"{where}.entities[{i}]")


def _check(data: Any) -> None:
    top = _obj(data, "the file")
    serial = top.get("serial", 0)
    if isinstance(serial, bool) or not isinstance(serial, int) or serial < 0:
        raise _ShapeError("serial", f"must be a whole number >= 0, not {serial!r}")
    for name, entity in _named(top.get("entities", {}), "entities").items():
        _join_keys(entity.get("join_keys", {}), f"entities[{name!r}].join_keys", untyped=True)
    for name, view in _named(top.get("views", {}), "views").items():
        _view(view, name, f"views[{name!r}]")
    for name, service in _named(top.get("services", {}), "services").items():
        for i, ref in enumerate(_list(service.get("features"), f"services[{name!r}].features")):
            _str(ref, f"services[{name!r}].features[{i}]")
    for name, versions in _named(top.get("versions", {}), "versions").items():
        for version, view in _obj(versions, f"versions[{name!r}]").items():
            _view(_obj(view, f"versions[{name!r}][{version!r}]"), name, f"versions[{name!r}][{version!r}]")
    for i, entry in enumerate(_list(top.get("history", []), "history")):
        _obj(entry, f"history[{i}]")


def check_registry(data: Any, path: object) -> None:
    """Raise ``RegistryError`` naming the first part of ``data`` that is not a registry's structure.

    ``check_registry({"format": 1, "views": []}, "r.json")`` raises
    ``registry file r.json: views: must be an object, not a list``.
    """
    try:
        _check(data)
    except _ShapeError as exc:
        hint = "restore it from version control, or move it away and run `featurestore apply`"
        raise RegistryError(f"registry file {path} is malformed: {exc} ({hint})") from None
