"""Online stores: the contract, its implementations, and the URL scheme -> store class registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from featurestore.errors import ConfigError
from featurestore.online.base import OnlineStore, StoreSettings

__all__ = ["OnlineStore", "StoreSettings", "STORES", "store_class", "open_online_store", "online_store_from_settings"]

# URL scheme -> "module:Class", imported only when used so `import featurestore` stays light.
# A new store is one module beside these plus one line here; the contract suite runs over each.
STORES = {
    "sqlite": "featurestore.online.sqlite:SqliteOnlineStore",
    "redis": "featurestore.online.redis:RedisOnlineStore",
    "rediss": "featurestore.online.redis:RedisOnlineStore",
    "memory": "featurestore.online.memory:MemoryOnlineStore",
    "redis+cluster": "featurestore.online.redis_cluster:RedisClusterOnlineStore",
    "rediss+cluster": "featurestore.online.redis_cluster:RedisClusterOnlineStore",
}


def store_class(url: str) -> type[OnlineStore]:
    """The store class for ``url``'s scheme (``ConfigError`` naming the known ones otherwise)."""
    import importlib

    from featurestore.errors import redact

    scheme = url.partition("://")[0].lower()
    target = STORES.get(scheme)
    if target is None or "://" not in url:
        raise ConfigError(
            f"online store URL {redact(url)!r}: unknown scheme {scheme!r}; use one of "
            + ", ".join(f"{s}://" for s in sorted(STORES))
        )
    module_name, _, cls_name = target.partition(":")
    cls: type[OnlineStore] = getattr(importlib.import_module(module_name), cls_name)
    return cls


def online_store_from_settings(settings: StoreSettings) -> OnlineStore:
    """The repository's online store: ``store_class(settings.online_url).from_settings(settings)``."""
    return store_class(settings.online_url).from_settings(settings)


@dataclass(frozen=True)
class _Settings:
    online_url: str
    project: str
    online_timeout: float


def open_online_store(url: str, project: str, *, timeout: float = 0.5, **options: Any) -> OnlineStore:
    """The online store for ``url``: ``sqlite:///path/online.db``, ``redis://host:port/db``, ``memory://``..."""
    if options:  # constructor options beyond the settings (e.g. max_connections)
        cls: Any = store_class(url)
        if url.lower().startswith("sqlite"):
            return cls(url[len("sqlite:///") :], project, **options)  # type: ignore[no-any-return]
        return cls(url, project, timeout=timeout, **options)  # type: ignore[no-any-return]
    return online_store_from_settings(_Settings(url, project, timeout))
