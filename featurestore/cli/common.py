"""Shared CLI plumbing: the repo option, the console, time flags, and turning errors into clean exits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from featurestore.errors import FeatureStoreError, redact

__all__ = [
    "console",
    "err_console",
    "RepoOption",
    "open_store",
    "find_repo_root",
    "errors_to_exit",
    "cli_hints",
    "UsageError",
    "parse_time",
    "split_names",
    "format_duration",
    "TIME_FORMATS",
]


def _console(stderr: bool = False) -> Console:
    # On a terminal rich fits tables to its width; in a pipe or a file nothing is cut to 80 columns.
    probe = Console(stderr=stderr)
    return probe if probe.is_terminal else Console(stderr=stderr, width=10_000, soft_wrap=True)


console = _console()
err_console = _console(stderr=True)

RepoOption = typer.Option(
    None,
    "--repo",
    "-r",
    help="Feature repository folder (holds featurestore.toml); found upwards from the current folder by default.",
)

TIME_FORMATS = "an ISO 8601 date or time in UTC, e.g. 2024-01-31, 2024-01-31T12:00 or 2024-01-31T12:00:00+02:00"


class UsageError(FeatureStoreError):
    """A command-line flag holds a value the command cannot use."""


def parse_time(value: str | None, flag: str) -> datetime | None:
    """The value of a time flag (``--start``) as a UTC datetime; a clear error naming the flag otherwise."""
    from featurestore.offline.frames import utc_datetime

    if value is None:
        return None
    try:
        return utc_datetime(value)
    except ValueError:
        raise UsageError(f"{flag} {value!r} is not a time: use {TIME_FORMATS}") from None


def split_names(values: list[str] | None) -> list[str]:
    """Repeated options whose values may also be comma-separated: ``-f a,b -f c`` -> ``[a, b, c]``."""
    return [item.strip() for value in values or [] for item in value.split(",") if item.strip()]


# Errors come from the SDK and name its keywords; on the command line the flag is what to type.
_SDK_TO_CLI = {
    "timestamp_column=": "--timestamp-column",
    "full_feature_names=True": "--full-feature-names",
    "allow_breaking=True": "--allow-breaking",
    "data_check=False": "--no-data-check",
}


def cli_hints(message: str) -> str:
    """An SDK error message with keyword hints (``timestamp_column=``) replaced by the CLI flag."""
    for keyword, flag in _SDK_TO_CLI.items():
        message = message.replace(keyword, flag)
    return message


def format_duration(seconds: float | None) -> str:
    """A duration as people write it: ``7d``, ``3h``, ``1d 6h``, ``90s`` -> ``1m 30s``; ``-`` for none."""
    if seconds is None:
        return "-"
    left = round(float(seconds))
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts[:2]) or "0s"


@contextlib.contextmanager
def errors_to_exit() -> Iterator[None]:
    """Print a FeatureStoreError, an OSError on a path or an object storage error as one clear line and
    exit 1, instead of a traceback."""
    try:
        yield
    except FeatureStoreError as exc:
        _print_error(type(exc).__name__, cli_hints(str(exc)))
        raise typer.Exit(1) from None
    except OSError as exc:
        # A store path that is a file, unwritable or on a full disk: the OS message names the path.
        where = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
        _print_error(type(exc).__name__, where)
        raise typer.Exit(1) from None
    except Exception as exc:
        # Object storage unreachable or refusing (boto3's errors name the endpoint, bucket and key).
        if not type(exc).__module__.startswith(("botocore", "boto3", "s3transfer")):
            raise
        _print_error(type(exc).__name__, f"object storage: {exc}")
        raise typer.Exit(1) from None


def _print_error(kind: str, message: str) -> None:
    # The message is escaped (a path or name may hold "[...]") and not wrapped, so it stays one line.
    text = f"[bold red]error:[/] {kind}: {escape(redact(message))}"
    err_console.print(text, highlight=False, markup=True, soft_wrap=True)


def find_repo_root(repo: Path | None) -> Path:
    """``--repo`` or the current folder, walked upwards to the folder holding featurestore.toml."""
    from featurestore.config import find_repo

    return find_repo(Path.cwd() if repo is None else repo)


def open_store(repo: Path | None):  # type: ignore[no-untyped-def]
    from featurestore.store import FeatureStore

    return FeatureStore(find_repo_root(repo))
