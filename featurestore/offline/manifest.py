"""Training-set manifests: what a saved training set was built from, so it can be rebuilt."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from featurestore.errors import TrainingSetError

__all__ = ["file_sha256", "write_manifest", "read_manifest", "manifest_path", "verify_files", "find_manifests"]

MANIFEST_SUFFIX = ".manifest.json"


def file_sha256(path: Path | str) -> str:
    """The SHA-256 of a local file or of an object-storage file (``s3://...``, read through pyarrow)."""
    h = hashlib.sha256()
    with _open(path) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _open(path: Path | str) -> Any:
    if not str(path).startswith("s3://"):
        return open(path, "rb")
    from featurestore.storage import open_storage

    storage = open_storage("s3://" + str(path).removeprefix("s3://").partition("/")[0])
    return storage.filesystem().open_input_stream(storage.fs_path(str(path)))


def _exists(path: Path | str) -> bool:
    try:
        with _open(path):
            return True
    except (FileNotFoundError, OSError):
        return False


def manifest_path(out: Path) -> Path:
    return out.with_name(out.name + ".manifest.json")


def write_manifest(out: Path, data: dict[str, Any]) -> Path:
    path = manifest_path(out)
    data = {"format": 1, "created_at": datetime.now(UTC).isoformat(timespec="seconds"), **data}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    tmp.replace(path)
    return path


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise TrainingSetError(f"manifest {path} does not exist") from None
    except orjson.JSONDecodeError as exc:
        raise TrainingSetError(f"manifest {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != 1:
        raise TrainingSetError(f"manifest {path} has an unknown format")
    return data


def verify_files(entries: list[dict[str, Any]], what: str) -> None:
    """Raise if a file recorded in a manifest is gone or changed."""
    for entry in entries:
        p = entry["path"] if str(entry["path"]).startswith("s3://") else Path(entry["path"])
        if not _exists(p):
            raise TrainingSetError(f"{what} file {p} recorded in the manifest no longer exists")
        if file_sha256(p) != entry["sha256"]:
            raise TrainingSetError(
                f"{what} file {p} changed since the manifest was written; the identical training set cannot be rebuilt"
            )


def find_manifests(root: Path, *, skip: tuple[Path, ...] = (), limit: int = 10_000) -> list[Path]:
    """Saved training-set manifests under ``root`` (hidden, ``_``-prefixed and ``skip`` folders left out)."""
    import os

    skipped = {str(Path(p).resolve()) for p in skip}
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith((".", "_")) and d != "node_modules" and str(Path(folder, d).resolve()) not in skipped
        ]
        found.extend(Path(folder, f) for f in files if f.endswith(MANIFEST_SUFFIX))
        if len(found) >= limit:
            break
    return sorted(found)[:limit]
