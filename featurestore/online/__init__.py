"""Online stores: the contract, the Redis and SQLite implementations, and the URL -> store map."""

from __future__ import annotations

from typing import Any

from featurestore.errors import ConfigError
from featurestore.online.base import OnlineStore

__all__ = ["OnlineStore", "open_online_store", "STORES"]

# URL scheme -> "module:Class", imported only when used so `import featurestore` stays light.
STORES = {
    "sqlite": "featurestore.online.sqlite:SqliteOnlineStore",
    "redis": "featurestore.online.redis:RedisOnlineStore",
    "rediss": "featurestore.online.redis:RedisOnlineStore",
    "redis+cluster": "featurestore.online.redis_cluster:RedisClusterOnlineStore",
    "rediss+cluster": "featurestore.online.redis_cluster:RedisClusterOnlineStore",
}


def open_online_store(url: str, project: str, *, timeout: float = 0.5, **options: Any) -> OnlineStore:
    """The online store for ``url``: ``sqlite:///path/online.db``, ``redis://host:port/db`` or ``rediss://``."""
    import importlib

    scheme = url.partition("://")[0].lower()
    target = STORES.get(scheme)
    if target is None or "://" not in url:
        raise ConfigError(f"online store URL {url!r}: unknown scheme {scheme!r}; use one of {sorted(STORES)}://...")
    module_name, _, cls_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    if scheme == "sqlite":
        # sqlite:///relative/path or sqlite:////absolute/path
        return cls(url[len("sqlite:///") :], project, **options)  # type: ignore[no-any-return]
    return cls(url, project, timeout=timeout, **options)  # type: ignore[no-any-return]
