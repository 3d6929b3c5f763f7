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
    """The registry file at ``path`` (JSON, sorted and indented so it diffs well in git).

    ``path`` may name object storage (``s3://bucket/key``): there each apply is a
    conditional write on the ETag it read, retried on a fresh read when another apply won.
    """

    def __init__(self, path: Path | str) -> None:
        self.location = str(path)
        self.path = Path(path) if not self.remote else Path(self.location.removeprefix("s3://"))

    @property
    def remote(self) -> bool:
        return self.location.startswith("s3://")

    def _object(self) -> tuple[Any, str]:
        from featurestore.storage import open_storage

        root, _, key = self.location.rpartition("/")
        return open_storage(root), key

    def exists(self) -> bool:
        if self.remote:
            storage, key = self._object()
            return storage.tag(key) is not None
        return self.path.is_file()

    def stamp(self) -> Any:
        """A value that changes whenever the registry is written (cheap: a stat, or a HEAD on object storage)."""
        if self.remote:
            storage, key = self._object()
            return storage.tag(key)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return (0, 0, 0)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> tuple[bytes | None, str | None]:
        """The raw registry and its tag (None, None when absent)."""
        if self.remote:
            storage, key = self._object()
            try:
                return storage.read(key)  # type: ignore[no-any-return]
            except FileNotFoundError:
                return None, None
        try:
            return self.path.read_bytes(), None
        except FileNotFoundError:
            return None, None

    def load(self) -> RegistryState:
        """Read the registry; an absent file is an empty registry."""
        return self._parse(self._read()[0])

    def _parse(self, raw: bytes | None) -> RegistryState:
        if raw is None:
            return RegistryState({"format": FORMAT, "serial": 0})
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise RegistryError(f"registry file {self.location} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise RegistryError(f"registry file {self.location} has an unknown format")
        check_registry(data, self.path)
        return RegistryState(data)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive inter-process lock on the registry (a lock file beside it; none on object storage)."""
        if self.remote:  # writes there are conditional instead
            yield
            return
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
        if self.remote:
            return self._apply_remote(desired, project=project, allow_breaking=allow_breaking)
        with self.lock():
            plan, data = self._next(self.load(), desired, project, allow_breaking)
            if data is not None:
                self._write(data)
            return plan

    def _apply_remote(self, desired: dict[str, Any], *, project: str, allow_breaking: bool) -> Plan:
        from featurestore.storage import WriteConflictError

        storage, key = self._object()
        for _ in range(20):
            raw, tag = self._read()
            plan, data = self._next(self._parse(raw), desired, project, allow_breaking)
            if data is None:
                return plan
            try:  # only the apply that read the current ETag can write: a concurrent one re-reads
                storage.replace(key, _payload(data), tag)
                return plan
            except WriteConflictError:
                continue
        raise RegistryError(f"registry {self.location} kept changing under this apply (20 attempts); run it again")

    def _next(
        self, state: RegistryState, desired: dict[str, Any], project: str, allow_breaking: bool
    ) -> tuple[Plan, dict[str, Any] | None]:
        """The plan from ``state`` to ``desired`` and the registry to write (None: nothing to write)."""
        plan = diff(state.specs(), desired)
        if plan.breaking and not allow_breaking:
            raise BreakingChangeError(
                "breaking change refused (pass allow_breaking=True to accept; "
                "the old version's offline data stays readable):\n  "
                + "\n  ".join(line for line in plan.summary() if line.endswith("[BREAKING]"))
            )
        if plan.empty and state.serial:
            return plan, None
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
        return plan, data

    def _write(self, data: dict[str, Any]) -> None:
        payload = _payload(data)
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


def _payload(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
