"""featurestore.toml plus FEATURESTORE_* environment variables -> Settings."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from featurestore.errors import ConfigError, did_you_mean, redact

__all__ = ["Settings", "ApiKey", "load_settings", "find_repo", "parse_api_keys", "redact", "CONFIG_FILE"]

CONFIG_FILE = "featurestore.toml"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ApiKey:
    """One configured API key: its name, the SHA-256 of the key, and what it may do.

    ``services``/``views`` of ``None`` mean no restriction on reads; ``push`` allows ``POST /push``
    to the views the key may read; ``push_views`` (when set) lists the views it may push to instead.
    """

    name: str
    sha256: str = field(repr=False)
    services: tuple[str, ...] | None = None
    views: tuple[str, ...] | None = None
    push: bool = False
    push_views: tuple[str, ...] | None = None


def _names(entry: dict[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key!r} must be a list of names")
    return tuple(value)


def parse_api_keys(value: Any) -> tuple[ApiKey, ...]:
    """``[[api_keys]]`` tables (or the same list as JSON text, from ``FEATURESTORE_API_KEYS``) -> ApiKey records."""
    if isinstance(value, str):
        if not value.strip():
            return ()
        import json

        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError(f"api_keys: not a JSON list of key objects ({exc.__class__.__name__})") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ConfigError("api_keys: expected a list of tables {name, sha256, services, views, push, push_views}")
    keys = []
    for i, entry in enumerate(value):
        if isinstance(entry, ApiKey):
            keys.append(entry)
            continue
        where = f"api_keys[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a table with name and sha256")
        unknown = set(entry) - {"name", "sha256", "services", "views", "push", "push_views"}
        if unknown:
            hint = "(a plain key is never accepted: use sha256)"
            raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)} {hint}")
        name, digest, push = entry.get("name", f"key{i}"), entry.get("sha256"), entry.get("push", False)
        if not isinstance(name, str) or not isinstance(push, bool):
            raise ConfigError(f"{where}: 'name' must be a string and 'push' true or false")
        if not isinstance(digest, str) or not _SHA256.match(digest.lower()):
            raise ConfigError(f"{where} ({name}): 'sha256' must be 64 hex digits (`featurestore new-api-key`)")
        services, views = _names(entry, "services", where), _names(entry, "views", where)
        keys.append(ApiKey(name, digest.lower(), services, views, push, _names(entry, "push_views", where)))
    return tuple(keys)


@dataclass(frozen=True, repr=False)
class Settings:
    """Resolved configuration of one feature repository.

    Every key can be set in ``featurestore.toml`` or overridden by the environment
    variable ``FEATURESTORE_<KEY>`` (e.g. ``FEATURESTORE_ONLINE``).
    """

    repo: Path
    project: str = "default"
    definitions: Path = Path("definitions")
    offline_root: Path = Path("data/offline")
    registry: Path = Path("data/registry.json")
    online: str = "sqlite:///data/online.db"
    engine: str = "duckdb"
    duckdb_memory_limit: str = "4GB"
    duckdb_temp_dir: Path = Path("data/tmp")
    duckdb_window_plan: str = "auto"
    spark_master: str = "local[*]"
    spark_conf: dict[str, str] = field(default_factory=dict)
    max_entities: int = 1000
    max_features: int = 500
    max_body_bytes: int = 1_048_576
    auth: str = "on"
    api_keys: tuple[ApiKey, ...] = ()
    online_timeout: float = 0.5
    log_level: str = "info"
    log_sample_rate: float = 0.0
    served_spool: str = "disk"
    served_spool_max_bytes: int = 4 * 1024**3
    plan_sample_rows: int = 10_000
    extra: dict[str, Any] = field(default_factory=dict)
    # Set when offline_root / registry name object storage (s3://bucket/prefix); offline_root then stays
    # a local folder for gate reports, quarantine, profiles and served logs.
    offline_uri: str | None = None
    registry_uri: str | None = None

    def __repr__(self) -> str:
        # Secrets never reach a log through a repr: URL passwords are masked, keys shown by name.
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "api_keys":
                value = [k.name for k in value]
            parts.append(f"{f.name}={redact(repr(value))}")
        return f"Settings({', '.join(parts)})"

    @property
    def offline_location(self) -> str | Path:
        """Where the offline store's Parquet files live: ``s3://bucket/prefix`` or a local folder."""
        return self.offline_uri or self.offline_root

    @property
    def registry_location(self) -> str | Path:
        """Where the registry lives: ``s3://bucket/key`` or a local file."""
        return self.registry_uri or self.registry

    @property
    def online_url(self) -> str:
        """The online URL with a relative sqlite path resolved against the repository."""
        if self.online.startswith("sqlite:///") and not self.online.startswith("sqlite:////"):
            rel = self.online[len("sqlite:///") :]
            return "sqlite:///" + str(self.repo / rel) if not Path(rel).is_absolute() else self.online
        return self.online


_PATH_KEYS = {"definitions", "offline_root", "registry", "duckdb_temp_dir"}
# Path keys that may name object storage instead, and the field that then holds the URI.
_URI_KEYS = {"offline_root": "offline_uri", "registry": "registry_uri"}
_URI_SCHEMES = ("s3://",)

# FEATURESTORE_* variables that are not settings (set by featurestore itself for its server workers).
_OTHER_ENV = {"FEATURESTORE_SERVE_REPO"}
_ENV_PREFIX = "FEATURESTORE_"


def find_repo(start: str | os.PathLike[str] = ".") -> Path:
    """The feature repository holding ``start``: the nearest folder from ``start`` upwards with a featurestore.toml.

    As git finds its root, so a command run in ``repo/definitions`` works on ``repo``.
    """
    here = Path(start).expanduser().resolve()
    if not here.is_dir():
        raise ConfigError(f"feature repository {here} does not exist")
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise ConfigError(f"no {CONFIG_FILE} in {here} or its parents; run `featurestore init` or pass --repo")


def _check_names(raw: dict[str, Any], env: dict[str, str], known: set[str], cfg_file: Path) -> None:
    """Refuse a misspelt key in featurestore.toml or FEATURESTORE_* variable, naming the nearest valid one."""
    for key in raw:
        if key not in known:
            hint = did_you_mean(key, known) or f" (valid keys: {', '.join(sorted(known))})"
            raise ConfigError(f"{cfg_file}: unknown key {key!r}{hint}")
    env_names = {_ENV_PREFIX + k.upper() for k in known}
    for name in env:
        if name.startswith(_ENV_PREFIX) and name not in env_names and name not in _OTHER_ENV:
            hint = did_you_mean(name, env_names) or f" (valid variables: {', '.join(sorted(env_names))})"
            raise ConfigError(f"unknown environment variable {name}{hint}")


def _coerce(name: str, value: Any, repo: Path) -> Any:
    kinds = {f.name: f.type for f in fields(Settings)}
    kind = kinds[name]
    try:
        if name == "api_keys":
            return parse_api_keys(value)
        if name == "auth":
            mode = {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else str(value).lower()
            if mode not in ("on", "off"):
                raise ConfigError(f'config key \'auth\': use "on" or "off", not {value!r}')
            return mode
        if name == "log_level":
            level = str(value).lower()
            if level not in ("debug", "info", "warning", "error"):
                raise ConfigError(f"config key 'log_level': use debug, info, warning or error, not {value!r}")
            return level
        if name == "served_spool":
            place = str(value).lower()
            if place not in ("memory", "disk"):
                raise ConfigError(f'config key \'served_spool\': use "memory" or "disk", not {value!r}')
            return place
        if name == "log_sample_rate":
            rate = float(value)
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(f"config key 'log_sample_rate': a fraction between 0 and 1, not {value!r}")
            return rate
        if name in _URI_KEYS and str(value).startswith(_URI_SCHEMES):
            return _check_uri(name, str(value))
        if name == "engine":
            return str(value).strip().lower()  # the name is checked against the engines when one is opened
        if name == "spark_conf":
            return _string_table(name, value)
        if name in _PATH_KEYS:
            p = Path(str(value)).expanduser()
            return p if p.is_absolute() else (repo / p)
        if kind == "int":
            return _at_least(name, _whole(value), _INT_MINIMUM.get(name, 0))
        if kind == "float":
            number = float(value)
            if name == "online_timeout" and not number > 0:
                raise ConfigError(f"config key 'online_timeout': a number of seconds above 0, not {value!r}")
            return number
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config key {name!r}: cannot use {value!r} ({exc})") from None


# The smallest useful value of each integer limit: below it every request or check would be refused.
_INT_MINIMUM = {
    "max_entities": 1,
    "max_features": 1,
    "max_body_bytes": 1,
    "plan_sample_rows": 0,
    "served_spool_max_bytes": 1,
}


def _whole(value: Any) -> int:
    """An integer from TOML or the environment; ``true`` or ``2.5`` is refused, not read as 1 or 2."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError("not a whole number")
    return int(value)


def _at_least(name: str, number: int, minimum: int) -> int:
    if number < minimum:
        raise ConfigError(f"config key {name!r}: at least {minimum}, not {number}")
    return number


def _check_uri(name: str, uri: str) -> str:
    bucket, _, rest = uri.partition("://")[2].partition("/")
    if not bucket or (name == "registry" and not rest.strip("/")):
        what = "s3://bucket/key" if name == "registry" else "s3://bucket/prefix"
        raise ConfigError(f"config key {name!r}: {uri!r} is not a complete location (use {what})")
    return uri.rstrip("/")


def _string_table(name: str, value: Any) -> dict[str, str]:
    """A TOML table of strings, or the same as a JSON object (from an environment variable)."""
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            raise ConfigError(f"config key {name!r}: not a JSON object of strings: {value!r}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"config key {name!r}: expected a table of strings, got {type(value).__name__}")
    out = {}
    for key, item in value.items():
        if isinstance(item, dict | list):
            raise ConfigError(f"config key {name!r}: the value of {key!r} must be a string, number or boolean")
        out[str(key)] = str(item).lower() if isinstance(item, bool) else str(item)
    return out


def load_settings(repo: str | os.PathLike[str] = ".", env: dict[str, str] | None = None) -> Settings:
    """Read ``<repo>/featurestore.toml`` and apply ``FEATURESTORE_*`` overrides."""
    env = dict(os.environ if env is None else env)
    repo_path = Path(repo).resolve()
    cfg_file = repo_path / CONFIG_FILE
    raw: dict[str, Any] = {}
    if cfg_file.is_file():
        try:
            raw = tomllib.loads(cfg_file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{cfg_file}: invalid TOML: {exc}") from None
    elif not repo_path.is_dir():
        raise ConfigError(f"feature repository {repo_path} does not exist")
    known = {f.name for f in fields(Settings)} - {"repo", "extra", *_URI_KEYS.values()}
    _check_names(raw, env, known, cfg_file)
    values: dict[str, Any] = dict(raw)
    for key in known:
        env_value = env.get(f"FEATURESTORE_{key.upper()}")
        if env_value is not None:
            values[key] = env_value
    resolved = {k: _coerce(k, v, repo_path) for k, v in values.items()}
    for key, uri_key in _URI_KEYS.items():
        if isinstance(resolved.get(key), str):
            resolved[uri_key] = resolved.pop(key)
    for key in _PATH_KEYS - resolved.keys():
        resolved[key] = repo_path / getattr(Settings, key)
    return Settings(repo=repo_path, **resolved)
