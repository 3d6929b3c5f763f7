"""featurestore.toml plus FEATURESTORE_* environment variables -> Settings."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from featurestore.errors import ConfigError

__all__ = ["Settings", "load_settings", "CONFIG_FILE"]

CONFIG_FILE = "featurestore.toml"


@dataclass(frozen=True)
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
    duckdb_memory_limit: str = "4GB"
    duckdb_temp_dir: Path = Path("data/tmp")
    max_entities: int = 1000
    max_features: int = 500
    max_body_bytes: int = 1_048_576
    api_keys: str = ""
    auth: str = "off"
    online_timeout: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def online_url(self) -> str:
        """The online URL with a relative sqlite path resolved against the repository."""
        if self.online.startswith("sqlite:///") and not self.online.startswith("sqlite:////"):
            rel = self.online[len("sqlite:///") :]
            return "sqlite:///" + str(self.repo / rel) if not Path(rel).is_absolute() else self.online
        return self.online


_PATH_KEYS = {"definitions", "offline_root", "registry", "duckdb_temp_dir"}


def _coerce(name: str, value: Any, repo: Path) -> Any:
    kinds = {f.name: f.type for f in fields(Settings)}
    kind = kinds[name]
    try:
        if name in _PATH_KEYS:
            p = Path(str(value)).expanduser()
            return p if p.is_absolute() else (repo / p)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config key {name!r}: cannot use {value!r} ({exc})") from None


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
    known = {f.name for f in fields(Settings)} - {"repo", "extra"}
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        if key in known:
            values[key] = value
        else:
            extra[key] = value
    for key in known:
        env_value = env.get(f"FEATURESTORE_{key.upper()}")
        if env_value is not None:
            values[key] = env_value
    resolved = {k: _coerce(k, v, repo_path) for k, v in values.items()}
    for key in _PATH_KEYS - resolved.keys():
        resolved[key] = repo_path / getattr(Settings, key)
    return Settings(repo=repo_path, extra=extra, **resolved)
