"""Find definitions: import every module of the definitions package and collect its objects."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path

from featurestore.dsl.entity import Entity
from featurestore.dsl.service import FeatureService
from featurestore.dsl.view import FeatureView
from featurestore.errors import DefinitionError

__all__ = ["Definitions", "discover", "SERVABLE_KEY_DTYPES"]

# What the online stores can address (see featurestore.online.codec).
SERVABLE_KEY_DTYPES = frozenset({"Int64", "Int32", "String"})


@dataclass
class Definitions:
    """The objects found in a definitions package, by name."""

    entities: dict[str, Entity] = field(default_factory=dict)
    views: dict[str, FeatureView] = field(default_factory=dict)
    services: dict[str, FeatureService] = field(default_factory=dict)


def _import_all(package_dir: Path) -> list[types.ModuleType]:
    if not (package_dir / "__init__.py").is_file():
        raise DefinitionError(f"definitions folder {package_dir} is not a Python package (no __init__.py)")
    pkg = package_dir.name
    parent = str(package_dir.parent)
    # A previous repository may have used the same package name in this process.
    for name in [m for m in sys.modules if m == pkg or m.startswith(pkg + ".")]:
        del sys.modules[name]
    if parent not in sys.path:
        sys.path.insert(0, parent)
    else:
        sys.path.remove(parent)
        sys.path.insert(0, parent)
    importlib.invalidate_caches()
    # The prefix makes walk_packages import subpackages under their real name, so their
    # modules are found too; a module or subpackage whose name starts with "_" is skipped.
    names = [pkg] + sorted(
        m.name
        for m in pkgutil.walk_packages([str(package_dir)], prefix=pkg + ".")
        if not any(part.startswith("_") for part in m.name.split(".")[1:])
    )
    modules = []
    for name in names:
        try:
            mod = importlib.import_module(name)
        except DefinitionError:
            raise
        except Exception as exc:  # a user's module may raise anything
            tb = traceback.extract_tb(exc.__traceback__)
            user = [f for f in tb if str(package_dir) in f.filename]
            where = f" (line {user[-1].lineno} of {Path(user[-1].filename).name})" if user else ""
            raise DefinitionError(f"cannot import: {type(exc).__name__}: {exc}{where}", module=name) from None
        if getattr(mod, "__file__", None) and not str(Path(mod.__file__ or "")).startswith(str(package_dir)):
            raise DefinitionError(f"module {name} resolves to {mod.__file__}, outside {package_dir}", module=name)
        modules.append(mod)
    return modules


def _add(table: dict, obj, kind: str) -> None:  # type: ignore[no-untyped-def]
    other = table.get(obj.name)
    if other is not None and other is not obj:
        raise DefinitionError(
            f"duplicate {kind} name {obj.name!r}: also defined in module {other.module}",
            module=obj.module,
            obj=obj.name,
        )
    table[obj.name] = obj


def discover(package_dir: Path) -> Definitions:
    """Import the definitions package and return its entities, views and services.

    Raises DefinitionError naming the module and object for duplicate names,
    unknown entities, bad service items or a module that fails to import.
    """
    defs = Definitions()
    for mod in _import_all(Path(package_dir).resolve()):
        for value in list(vars(mod).values()):
            if isinstance(value, Entity):
                _add(defs.entities, value, "entity")
            elif isinstance(value, FeatureView):
                _add(defs.views, value, "feature view")
            elif isinstance(value, FeatureService):
                _add(defs.services, value, "feature service")
    _check_references(defs)
    return defs


def _check_references(defs: Definitions) -> None:
    for view in defs.views.values():
        for ent in view.entities:
            name = ent if isinstance(ent, str) else ent.name
            known = defs.entities.get(name)
            if known is None:
                raise DefinitionError(
                    f"unknown entity {name!r} (known: {sorted(defs.entities)}); define it at module level",
                    module=view.module,
                    obj=view.name,
                )
            if isinstance(ent, Entity) and ent is not known:
                raise DefinitionError(f"entity {name!r} is defined twice", module=view.module, obj=view.name)
        keys = view.join_keys(defs.entities)
        unservable = {k: str(t) for k, t in keys.items() if t is not None and str(t) not in SERVABLE_KEY_DTYPES}
        if view.online and unservable:
            raise DefinitionError(
                f"join keys {unservable} cannot be served online; use Int64, Int32 or String keys, "
                "or declare the view with online=False",
                module=view.module,
                obj=view.name,
            )
        clash = sorted(set(keys) & {f.name for f in view.features})
        if clash:
            raise DefinitionError(f"features {clash} clash with join keys", module=view.module, obj=view.name)
    for svc in defs.services.values():
        if svc.name in defs.views:
            raise DefinitionError(
                f"feature service {svc.name!r} has the same name as a feature view", module=svc.module, obj=svc.name
            )
        for item in svc.items:
            view = item if isinstance(item, FeatureView) else item.view
            if defs.views.get(view.name) is not view:
                raise DefinitionError(
                    f"uses feature view {view.name!r}, which is not defined at module level in the definitions package",
                    module=svc.module,
                    obj=svc.name,
                )
