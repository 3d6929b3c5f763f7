"""Discover definitions, version them and keep the registry file."""

from featurestore.registry.discover import Definitions, discover
from featurestore.registry.plan import Change, Plan, diff
from featurestore.registry.spec import ViewSpec, build_specs, view_version
from featurestore.registry.store import Registry, RegistryState

__all__ = [
    "Definitions",
    "discover",
    "Change",
    "Plan",
    "diff",
    "ViewSpec",
    "build_specs",
    "view_version",
    "Registry",
    "RegistryState",
]
