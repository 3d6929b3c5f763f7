"""What the server caches between requests: registry state, resolved plans, version pointers, row layouts."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import orjson

from featurestore.errors import NotFoundError, NotReadyError, RegistryError, RequestError, StoreUnavailableError
from featurestore.online.base import OnlineStore
from featurestore.registry.store import Registry, RegistryState
from featurestore.server.logs import LOGGER
from featurestore.serving.lookup import LookupPlan, layout_of, plan_lookup

__all__ = ["Catalog"]

# Plans are cached per distinct request shape; a client sending endless distinct
# feature lists must not grow memory without bound.
_MAX_PLANS = 4096


class Catalog:
    """Registry and version pointers, re-checked at most every ``interval`` seconds.

    The registry file is re-read only when its stat changes; feature references are
    resolved once per registry version and request shape. A file that fails to load leaves
    the last good registry in service and its error in ``registry_error`` (``/ready`` says so).
    """

    def __init__(self, registry_path: os.PathLike[str] | str, store: OnlineStore, interval: float = 1.0) -> None:
        self.registry = Registry(registry_path)  # type: ignore[arg-type]
        self.store = store
        self.interval = interval
        self._stat: Any = None
        self._state = RegistryState({})
        self._loaded = False
        self.registry_error: str | None = None
        self._plans: dict[Any, LookupPlan] = {}
        self._layouts: dict[tuple[str, str], dict[str, int]] = {}
        self._headers: dict[tuple[str, str], bytes] = {}
        self._versions: dict[str, str] | None = None
        self._checked = float("-inf")
        self.reload_registry()

    @property
    def state(self) -> RegistryState:
        return self._state

    @property
    def degraded(self) -> bool:
        """Whether the registry file on disk failed to load (the last good one, if any, is served)."""
        return self.registry_error is not None

    @property
    def serving(self) -> bool:
        """Whether a registry (possibly an older one than on disk) is in service."""
        return self._loaded

    def reload_registry(self) -> bool:
        """Re-read the registry if the file changed; return whether it did."""
        stamp = self.registry.stamp()
        if stamp == self._stat:
            return False
        try:
            state = self.registry.load()
        except RegistryError as exc:
            # A broken file: keep serving the previous state until the file changes again.
            self._stat, self.registry_error = stamp, str(exc)
            logging.getLogger(LOGGER).error("registry not reloaded, serving the last good one: %s", exc)
            return False
        self._state, self._stat, self._loaded, self.registry_error = state, stamp, True, None
        self._plans.clear()
        self._layouts.clear()
        self._headers.clear()
        return True

    async def refresh(self, force: bool = False) -> None:
        """At most once per interval: reload a changed registry and re-read the version pointers."""
        now = time.monotonic()
        # Unknown pointers (start-up, after an outage) are always re-read: concurrent requests must
        # not answer 503 just because another request's read is still in flight.
        if not force and self._versions is not None and now - self._checked < self.interval:
            return
        self._checked = now
        self.reload_registry()
        try:
            self._versions = await self.store.acurrent_versions()
        except StoreUnavailableError:
            self._versions = None
            raise

    def invalidate(self) -> None:
        """Make the next request re-check the registry and pointers (after a push)."""
        self._checked = float("-inf")

    def versions(self) -> dict[str, str]:
        if self._versions is None:
            raise StoreUnavailableError("the online store did not answer (version pointers unknown)")
        return self._versions

    def plan(self, features: str | Sequence[str], full_feature_names: bool) -> LookupPlan:
        key = (features if isinstance(features, str) else tuple(features), full_feature_names)
        plan = self._plans.get(key)
        if plan is None:
            if not self._state.views:
                if self.registry_error is not None:
                    raise NotReadyError(self.registry_error)
                raise NotFoundError("the registry is empty; run `featurestore apply`")
            plan = plan_lookup(self._state, features, full_feature_names)
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def service_views(self, service: str) -> list[str]:
        """The views a feature service reads (none if it is unknown)."""
        try:
            return [v.name for v in self.plan(service, False).views]
        except RequestError:
            return []

    def spec_resolver(self, view: str) -> Any:
        """For a push: the spec of an applied version of ``view``, re-reading a registry that lags behind."""

        def resolve(version: str) -> Any:
            try:
                return self._state.view(view, version)
            except RegistryError:
                return self.registry.load().view(view, version)

        return resolve

    def layout(self, view: str, version: str) -> dict[str, int]:
        key = (view, version)
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._layouts[key] = layout_of(self._state, view, version)
        return layout

    def rows_header(self, view: str, version: str) -> bytes:
        """The start of a ``/rows`` response for a view version, encoded once."""
        key = (view, version)
        head = self._headers.get(key)
        if head is None:
            layout = self.layout(view, version)
            columns = ["event_timestamp_us", *sorted(layout, key=layout.__getitem__), "created_us"]
            head = orjson.dumps({"view": view, "version": version, "columns": columns})[:-1]
            self._headers[key] = head
        return head
