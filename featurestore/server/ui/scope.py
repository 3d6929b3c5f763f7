"""What one API key may see in the UI: the views and services it may read (all of them when unscoped)."""

from __future__ import annotations

from dataclasses import dataclass

from featurestore.config import ApiKey
from featurestore.errors import ForbiddenError
from featurestore.registry.store import RegistryState

__all__ = ["Scope", "service_views"]


def service_views(state: RegistryState, service: str) -> list[str]:
    """The views a service's references read, in order (``view:feature`` and ``view:*`` references)."""
    refs = state.services.get(service, {}).get("features", [])
    out: list[str] = []
    for ref in refs:
        view = str(ref).split(":", 1)[0]
        if view not in out:
            out.append(view)
    return out


@dataclass(frozen=True)
class Scope:
    """Readable views and services; ``None`` means every one (auth off, or a key without limits).

    A key sees the views it lists and the views of the services it lists (their definitions, checks,
    reports and drift), and the services it lists (or whose every view it may read). Rows of a view
    (the quarantine browser) only where the key lists the view: the API's ``check_read`` lets a key
    scoped to a service read its views through that service only, and a quarantined row holds
    every column of its view, not only the service's features.
    """

    views: frozenset[str] | None
    services: frozenset[str] | None
    key_name: str | None = None
    row_views: frozenset[str] | None = None  # views whose rows the key reads (None: every one)

    @classmethod
    def of(cls, key: ApiKey | None, state: RegistryState) -> Scope:
        if key is None or (key.services is None and key.views is None):
            return cls(None, None, None if key is None else key.name, None)
        views = set(key.views or ())
        services = set(key.services or ())
        for service in key.services or ():
            views.update(service_views(state, service))
        for service in state.services:
            if key.views is not None and all(v in key.views for v in service_views(state, service)):
                services.add(service)
        return cls(frozenset(views), frozenset(services), key.name, frozenset(key.views or ()))

    def can_view(self, name: str) -> bool:
        return self.views is None or name in self.views

    def can_service(self, name: str) -> bool:
        return self.services is None or name in self.services

    def require_view(self, name: str) -> None:
        """Raise 403 unless the key may read ``name``."""
        if not self.can_view(name):
            raise ForbiddenError(f"API key {self.key_name!r} may not read view {name!r}")

    def require_rows(self, name: str) -> None:
        """Raise 403 unless the key may read the rows of view ``name`` (it lists the view, or has no limit)."""
        self.require_view(name)
        if self.row_views is not None and name not in self.row_views:
            raise ForbiddenError(
                f"API key {self.key_name!r} reads view {name!r} through its feature services only; its "
                "quarantined rows hold every column of the view: list the view in the key's views to browse them"
            )

    def require_service(self, name: str) -> None:
        if not self.can_service(name):
            raise ForbiddenError(f"API key {self.key_name!r} may not read feature service {name!r}")
