"""featurestore.toml keys, path resolution, FEATURESTORE_* overrides and config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurestore.config import find_repo, load_settings
from featurestore.errors import ConfigError


def write_config(repo: Path, text: str) -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "featurestore.toml").write_text(text)
    return repo


def test_toml_keys_are_read(tmp_path: Path) -> None:
    repo = write_config(
        tmp_path / "repo",
        'project = "flights"\n'
        'definitions = "defs"\n'
        'offline_root = "store/offline"\n'
        'registry = "store/reg.json"\n'
        'online = "redis://localhost:6379/2"\n'
        "max_entities = 7\n",
    )
    s = load_settings(repo, env={})
    assert s.repo == repo.resolve()
    assert s.project == "flights"
    assert s.definitions == repo.resolve() / "defs"
    assert s.offline_root == repo.resolve() / "store" / "offline"
    assert s.registry == repo.resolve() / "store" / "reg.json"
    assert s.online == "redis://localhost:6379/2"
    assert s.online_url == "redis://localhost:6379/2"
    assert s.max_entities == 7


def test_defaults_resolve_against_the_repo_not_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = write_config(tmp_path / "repo", 'project = "p"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = load_settings(repo, env={})
    root = repo.resolve()
    assert s.definitions == root / "definitions"
    assert s.offline_root == root / "data" / "offline"
    assert s.registry == root / "data" / "registry.json"
    assert s.online_url == f"sqlite:///{root}/data/online.db"


def test_relative_paths_resolve_against_the_repo_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = write_config(tmp_path / "repo", 'offline_root = "../shared/offline"\nonline = "sqlite:///db/online.db"\n')
    monkeypatch.chdir(tmp_path)
    s = load_settings("repo", env={})
    assert s.offline_root.resolve() == (tmp_path / "shared" / "offline").resolve()
    assert s.online_url == f"sqlite:///{repo.resolve()}/db/online.db"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    absolute = tmp_path / "abs" / "registry.json"
    repo = write_config(tmp_path / "repo", f'registry = "{absolute}"\n')
    assert load_settings(repo, env={}).registry == absolute


def test_environment_overrides_toml(tmp_path: Path) -> None:
    repo = write_config(tmp_path / "repo", 'project = "from_toml"\nonline = "sqlite:///a.db"\nregistry = "r.json"\n')
    env = {
        "FEATURESTORE_PROJECT": "from_env",
        "FEATURESTORE_ONLINE": "redis://cache:6379/0",
        "FEATURESTORE_REGISTRY": "other/registry.json",
        "FEATURESTORE_MAX_ENTITIES": "42",
        "FEATURESTORE_ONLINE_TIMEOUT": "1.5",
    }
    s = load_settings(repo, env=env)
    assert s.project == "from_env"
    assert s.online == "redis://cache:6379/0"
    assert s.registry == repo.resolve() / "other" / "registry.json"
    assert s.max_entities == 42
    assert s.online_timeout == 1.5


def test_environment_without_override_keeps_toml(tmp_path: Path) -> None:
    repo = write_config(tmp_path / "repo", 'project = "from_toml"\n')
    s = load_settings(repo, env={"UNRELATED": "x", "FEATURESTORE_SERVE_REPO": "y"})
    assert s.project == "from_toml"


def test_environment_override_without_config_file(tmp_path: Path) -> None:
    repo = tmp_path / "bare"
    repo.mkdir()
    s = load_settings(repo, env={"FEATURESTORE_OFFLINE_ROOT": "off"})
    assert s.offline_root == repo.resolve() / "off"
    assert s.project == "default"


def test_invalid_toml_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    repo = write_config(tmp_path / "repo", 'project = "unterminated\n')
    with pytest.raises(ConfigError) as info:
        load_settings(repo, env={})
    assert str(repo.resolve() / "featurestore.toml") in str(info.value)
    assert "TOML" in str(info.value)


def test_bad_value_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    repo = write_config(tmp_path / "repo", 'project = "p"\n')
    with pytest.raises(ConfigError, match="max_entities"):
        load_settings(repo, env={"FEATURESTORE_MAX_ENTITIES": "many"})


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("max_entities = -5", "max_entities"),
        ("max_features = 0", "max_features"),
        ("max_body_bytes = 0", "max_body_bytes"),
        ("plan_sample_rows = -1", "plan_sample_rows"),
        ("online_timeout = 0", "online_timeout"),
        ("online_timeout = -1.5", "online_timeout"),
        ("max_entities = 2.5", "max_entities"),
        ("max_entities = true", "max_entities"),
    ],
)
def test_a_limit_that_refuses_everything_is_a_config_error_naming_the_key(tmp_path: Path, toml: str, key: str) -> None:
    # max_entities = -5 was accepted and every lookup then answered 422; 2.5 was read as 2.
    repo = write_config(tmp_path / "repo", f'project = "p"\n{toml}\n')
    with pytest.raises(ConfigError, match=key):
        load_settings(repo, env={})
    env_value = toml.split(" = ")[1]
    with pytest.raises(ConfigError, match=key):
        load_settings(write_config(tmp_path / "env", 'project = "p"\n'), env={f"FEATURESTORE_{key.upper()}": env_value})


def test_limits_at_their_smallest_are_accepted(tmp_path: Path) -> None:
    text = "max_entities = 1\nmax_features = 1\nmax_body_bytes = 1\nplan_sample_rows = 0\nonline_timeout = 0.01\n"
    settings = load_settings(write_config(tmp_path / "repo", text), env={"FEATURESTORE_MAX_ENTITIES": "3"})
    assert (settings.max_entities, settings.max_features, settings.max_body_bytes) == (3, 1, 1)
    assert (settings.plan_sample_rows, settings.online_timeout) == (0, 0.01)


def test_missing_repository_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope", env={})


def test_unknown_toml_key_names_the_nearest_valid_one(tmp_path: Path) -> None:
    repo = write_config(tmp_path / "repo", 'onlien = "sqlite:///x.db"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'onlien' \(did you mean 'online'\?\)"):
        load_settings(repo, env={})


def test_unknown_toml_key_without_a_near_one_lists_the_valid_keys(tmp_path: Path) -> None:
    repo = write_config(tmp_path / "repo", "zzz = 1\n")
    with pytest.raises(ConfigError, match="unknown key 'zzz' \\(valid keys: api_keys, auth"):
        load_settings(repo, env={})


def test_unknown_environment_variable_names_the_nearest_valid_one(tmp_path: Path) -> None:
    repo = write_config(tmp_path / "repo", 'project = "p"\n')
    with pytest.raises(ConfigError, match="FEATURESTORE_ONLIEN .*did you mean 'FEATURESTORE_ONLINE'"):
        load_settings(repo, env={"FEATURESTORE_ONLIEN": "redis://x"})


def test_find_repo_walks_up_to_the_folder_with_featurestore_toml(tmp_path: Path) -> None:
    repo = write_config(tmp_path / "repo", 'project = "p"\n')
    sub = repo / "definitions" / "deep"
    sub.mkdir(parents=True)
    assert find_repo(sub) == repo.resolve()
    assert find_repo(repo) == repo.resolve()


def test_find_repo_outside_a_repository_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        find_repo(tmp_path)
    assert str(info.value) == (
        f"no featurestore.toml in {tmp_path.resolve()} or its parents; run `featurestore init` or pass --repo"
    )
