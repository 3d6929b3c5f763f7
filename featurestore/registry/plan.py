"""Diff the desired definitions against the registry: what apply would add, remove or change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Change", "Plan", "diff"]


@dataclass(frozen=True)
class Change:
    """One object added, removed or changed, with human-readable details."""

    kind: str  # "entity" | "view" | "service"
    name: str
    action: str  # "add" | "remove" | "change"
    details: tuple[str, ...] = ()
    breaking: bool = False


@dataclass
class Plan:
    """The changes an apply would make; ``breaking`` lists those refused by default."""

    changes: list[Change] = field(default_factory=list)
    # Views whose source and transform ran on a sample before planning: name -> rows produced.
    data_checked: dict[str, int] = field(default_factory=dict)

    @property
    def breaking(self) -> list[Change]:
        return [c for c in self.changes if c.breaking]

    def changed(self, kind: str) -> list[str]:
        """Names of the objects of ``kind`` ("view"...) that are added or changed."""
        return [c.name for c in self.changes if c.kind == kind and c.action in ("add", "change")]

    @property
    def empty(self) -> bool:
        return not self.changes

    def summary(self) -> list[str]:
        lines = []
        for c in self.changes:
            text = f"{c.action} {c.kind} {c.name}"
            if c.details:
                text += ": " + "; ".join(c.details)
            lines.append(text + (" [BREAKING]" if c.breaking else ""))
        return lines


def _view_details(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], bool]:
    details: list[str] = []
    breaking = False
    old_f = {f["name"]: f["dtype"] for f in old["features"]}
    new_f = {f["name"]: f["dtype"] for f in new["features"]}
    for name in new_f.keys() - old_f.keys():
        details.append(f"feature {name} added ({new_f[name]})")
    for name in sorted(old_f.keys() - new_f.keys()):
        details.append(f"feature {name} removed")
        breaking = True
    for name in sorted(old_f.keys() & new_f.keys()):
        if old_f[name] != new_f[name]:
            details.append(f"feature {name} dtype {old_f[name]} -> {new_f[name]}")
            breaking = True
    if old["join_keys"] != new["join_keys"]:
        details.append(f"join keys {old['join_keys']} -> {new['join_keys']}")
        breaking = True
    for key, label in (("source", "source"), ("transform", "transform"), ("ttl_seconds", "ttl")):
        if old.get(key) != new.get(key):
            details.append(f"{label} changed")
    old_checks = {f["name"]: f.get("checks") for f in old["features"]}
    if any(old_checks.get(f["name"]) != f.get("checks") for f in new["features"] if f["name"] in old_checks):
        details.append("checks changed")
    for key in ("gate", "online", "tags", "owner", "description"):
        if old.get(key) != new.get(key):
            details.append(f"{key} changed")
    if old["version"] != new["version"]:
        details.append(f"version {old['version']} -> {new['version']}")
    return sorted(details, key=lambda d: (not d.startswith("feature"), d)), breaking


def diff(current: dict[str, Any], desired: dict[str, Any]) -> Plan:
    """Compare two spec sets (``{"entities", "views", "services"}``) and list the changes."""
    plan = Plan()
    for kind, key in (("entity", "entities"), ("view", "views"), ("service", "services")):
        old_all = current.get(key, {})
        new_all = desired.get(key, {})
        for name in sorted(new_all.keys() - old_all.keys()):
            plan.changes.append(Change(kind, name, "add"))
        for name in sorted(old_all.keys() - new_all.keys()):
            plan.changes.append(Change(kind, name, "remove"))
        for name in sorted(old_all.keys() & new_all.keys()):
            old, new = old_all[name], new_all[name]
            if _strip(old) == _strip(new):
                continue
            if kind == "view":
                details, breaking = _view_details(old, new)
                plan.changes.append(Change(kind, name, "change", tuple(details), breaking))
            else:
                changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k != "module")
                plan.changes.append(Change(kind, name, "change", tuple(f"{k} changed" for k in changed)))
    return plan


def _strip(spec: dict[str, Any]) -> dict[str, Any]:
    # Moving a definition to another module is not a change of the object.
    return {k: v for k, v in spec.items() if k != "module"}
