"""API keys: SHA-256 hashes in the config, constant-time checks, per-key read and push scopes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Sequence

from featurestore.config import ApiKey
from featurestore.errors import ForbiddenError

__all__ = [
    "KeyRing",
    "check_read",
    "check_push",
    "may_read_view",
    "hash_key",
    "new_api_key",
    "toml_snippet",
    "OPEN_PATHS",
    "OPEN_PREFIX",
    "SCOPE_KEY",
]

# Reachable without a key: probes, metrics, the API documentation and the UI's page (its /ui/api calls need one).
OPEN_PATHS = frozenset(
    {"/health", "/ready", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
    | {"/ui", "/ui/", "/ui/auth"}
)
# The UI's static assets (HTML, JS, CSS) load without a key too.
OPEN_PREFIX = "/ui/static/"
# Where the middleware leaves the authenticated key in the ASGI scope for the handlers.
SCOPE_KEY = "featurestore.api_key"


def hash_key(key: str) -> str:
    """The hex SHA-256 of an API key, as written in ``[[api_keys]] sha256 = ...``."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    """A fresh random API key (256 bits, URL-safe)."""
    return "fs_" + secrets.token_urlsafe(32)


def toml_snippet(key: str, name: str, services: Sequence[str] | None = None, push: bool = False) -> str:
    """The ``featurestore.toml`` table that accepts ``key`` (only its hash is written)."""
    lines = ["[[api_keys]]", f'name = "{name}"', f'sha256 = "{hash_key(key)}"']
    if services:
        lines.append("services = [" + ", ".join(f'"{s}"' for s in services) + "]")
    lines.append(f"push = {'true' if push else 'false'}")
    return "\n".join(lines) + "\n"


class KeyRing:
    """The configured keys; ``authenticate`` finds the key a request presents, comparing hashes in constant time."""

    def __init__(self, keys: Iterable[ApiKey], enabled: bool = True) -> None:
        self.keys = tuple(keys)
        self.enabled = enabled
        self._digests = [(bytes.fromhex(k.sha256), k) for k in self.keys]

    def authenticate(self, headers: Iterable[tuple[bytes, bytes]]) -> ApiKey | None:
        """The key sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (ASGI headers), if valid."""
        presented = None
        for name, value in headers:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    presented = token.strip()
            elif name == b"x-api-key":
                presented = value.strip()
        if not presented:
            return None
        digest = hashlib.sha256(presented).digest()
        found = None
        for expected, key in self._digests:  # no early exit: timing does not depend on which key matched
            if hmac.compare_digest(digest, expected):
                found = key
        return found


def check_read(key: ApiKey | None, service: str | None, views: Iterable[str]) -> None:
    """Raise 403 unless ``key`` may read ``service`` (when the request names one) or every view in ``views``."""
    if key is None or (key.services is None and key.views is None):
        return
    if service is not None and key.services is not None and service in key.services:
        return
    if key.views is not None and all(v in key.views for v in views):
        return
    what = f"feature service {service!r}" if service is not None else f"view(s) {sorted(set(views))}"
    raise ForbiddenError(f"API key {key.name!r} may not read {what}")


def may_read_view(key: ApiKey, view: str, service_views: Callable[[str], Iterable[str]]) -> bool:
    """Whether ``key`` may read ``view``: no read limit, the view listed, or a listed service reads it."""
    if key.services is None and key.views is None:
        return True
    if key.views is not None and view in key.views:
        return True
    return any(view in service_views(s) for s in key.services or ())


def check_push(key: ApiKey | None, view: str, service_views: Callable[[str], Iterable[str]]) -> None:
    """Raise 403 unless ``key`` may push to ``view``.

    A key may push only where ``push = true`` and only to views it may read (``services``,
    ``views``), unless ``push_views`` lists the views it may push to. ``service_views``
    gives the views a feature service reads.
    """
    if key is None:
        return
    if key.push_views is not None:
        if view not in key.push_views:
            raise ForbiddenError(f"API key {key.name!r} may not push to view {view!r} (not in its push_views)")
        return
    if not key.push:
        raise ForbiddenError(f"API key {key.name!r} may not push (set push = true on the key)")
    if not may_read_view(key, view, service_views):
        raise ForbiddenError(
            f"API key {key.name!r} may not push to view {view!r}: a key pushes only to views it may read "
            "(or list them in push_views)"
        )
