"""The registry file: current definitions plus the history of applied versions, locked and atomic."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from featurestore.errors import BreakingChangeError, RegistryError, did_you_mean
from featurestore.registry.plan import Plan, diff
from featurestore.registry.spec import ViewSpec
from featurestore.registry.validate import check_registry

__all__ = ["Registry", "RegistryState", "FORMAT"]

FORMAT = 1


class RegistryState:
    """One read of the registry file."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @property
    def serial(self) -> int:
        return int(self.data.get("serial", 0))

    @property
    def entities(self) -> dict[str, Any]:
        return dict(self.data.get("entities", {}))

    @property
    def services(self) -> dict[str, Any]:
        return dict(self.data.get("services", {}))

    @property
    def views(self) -> dict[str, ViewSpec]:
        return {name: ViewSpec(spec) for name, spec in self.data.get("views", {}).items()}

    def view(self, name: str, version: str | None = None) -> ViewSpec:
        """The current spec of a view, or a given (possibly older) applied version."""
        if version is None:
            views = self.data.get("views", {})
            spec = views.get(name)
            if spec is None:
                raise RegistryError(
                    f"unknown feature view {name!r}{did_you_mean(name, views)}; applied views: {sorted(views)}"
                )
            return ViewSpec(spec)
        spec = self.data.get("versions", {}).get(name, {}).get(version)
        if spec is None:
            raise RegistryError(f"feature view {name!r} has no applied version {version!r}")
        return ViewSpec(spec)

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.data.get("history", []))

    def specs(self) -> dict[str, Any]:
        return {k: self.data.get(k, {}) for k in ("entities", "views", "services")}


class Registry:
    """The registry file at ``path`` (JSON, sorted and indented so it diffs well in git)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> RegistryState:
        """Read the registry; an absent file is an empty registry."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return RegistryState({"format": FORMAT, "serial": 0})
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise RegistryError(f"registry file {self.path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise RegistryError(f"registry file {self.path} has an unknown format")
        check_registry(data, self.path)
        return RegistryState(data)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive inter-process lock on the registry (a lock file beside it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def plan(self, desired: dict[str, Any]) -> Plan:
        return diff(self.load().specs(), desired)

    def apply(self, desired: dict[str, Any], *, project: str, allow_breaking: bool = False) -> Plan:
        """Make ``desired`` the current definitions, keeping every applied view version.

        Raises BreakingChangeError, writing nothing, when a feature would be removed
        or change dtype and ``allow_breaking`` is false.
        """
        with self.lock():
            state = self.load()
            plan = diff(state.specs(), desired)
            if plan.breaking and not allow_breaking:
                raise BreakingChangeError(
                    "breaking change refused (pass allow_breaking=True to accept; "
                    "the old version's offline data stays readable):\n  "
                    + "\n  ".join(line for line in plan.summary() if line.endswith("[BREAKING]"))
                )
            if plan.empty and state.serial:
                return plan
            data = dict(state.data)
            now = datetime.now(UTC).isoformat(timespec="seconds")
            versions = {k: dict(v) for k, v in data.get("versions", {}).items()}
            for name, spec in desired["views"].items():
                versions.setdefault(name, {})[spec["version"]] = spec
            serial = state.serial + 1
            data.update(desired)
            data.update(
                {
                    "format": FORMAT,
                    "project": project,
                    "serial": serial,
                    "updated_at": now,
                    "versions": versions,
                    "history": [
                        *state.history,
                        {
                            "serial": serial,
                            "applied_at": now,
                            "changes": plan.summary(),
                            "views": {n: s["version"] for n, s in desired["views"].items()},
                        },
                    ],
                }
            )
            self._write(data)
            return plan

    def _write(self, data: dict[str, Any]) -> None:
        payload = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        fd, tmp = tempfile.mkstemp(prefix=".registry-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
