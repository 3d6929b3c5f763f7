"""Whole objects under a root on local disk or object storage (S3 and its compatibles), one interface."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from featurestore._optional import require
from featurestore.errors import ConfigError

__all__ = ["Storage", "LocalStorage", "S3Storage", "StoredObject", "WriteConflictError", "open_storage", "is_uri"]

_SCHEMES = ("s3://",)


def is_uri(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` names object storage (``s3://bucket/prefix``) rather than a local path."""
    return str(location).startswith(_SCHEMES)


class WriteConflictError(Exception):
    """A conditional write lost: the object exists already, or changed since it was read."""


@dataclass(frozen=True)
class StoredObject:
    """One listed object: its key below the root, when it was last written, and its size."""

    key: str
    modified: datetime
    size: int


class Storage(ABC):
    """Objects addressed by ``/``-separated keys below one root.

    Writes are whole objects, visible completely or not at all. ``create`` and
    ``replace`` are the two conditional writes the commit protocol and the registry
    build on: only one of several concurrent callers can win either.
    """

    root: str

    @abstractmethod
    def uri(self, key: str) -> str:
        """The full location of ``key``: a path, or ``s3://bucket/prefix/key``."""

    @abstractmethod
    def list(self, prefix: str) -> list[StoredObject]:
        """Every object whose key starts with ``prefix``, in key order (``list("_log/trips/")``)."""

    @abstractmethod
    def read(self, key: str) -> tuple[bytes, str]:
        """The bytes of ``key`` and its tag (for ``replace``); FileNotFoundError when absent."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Write ``key`` whole, replacing any previous object."""

    @abstractmethod
    def create(self, key: str, data: bytes) -> None:
        """Write ``key`` only if no object has that key; WriteConflictError otherwise.

        Example: two writers both calling ``create("_log/trips/000000000002.json", ...)``:
        exactly one returns, the other raises WriteConflictError.
        """

    @abstractmethod
    def replace(self, key: str, data: bytes, tag: str | None) -> None:
        """Write ``key`` only if it still has ``tag`` (from ``read``; None: only if absent); else WriteConflictError."""

    @abstractmethod
    def upload(self, local: Path, key: str) -> None:
        """Copy the local file ``local`` to ``key``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; absent is fine."""

    def exists(self, key: str) -> bool:
        try:
            self.read(key)
        except FileNotFoundError:
            return False
        return True

    @abstractmethod
    def tag(self, key: str) -> str | None:
        """A value that changes whenever ``key`` is written (None when absent), without reading it."""

    @abstractmethod
    def filesystem(self) -> Any:
        """A ``pyarrow.fs.FileSystem`` over this storage, for Parquet reads and writes."""

    @abstractmethod
    def fs_path(self, uri: str) -> str:
        """The path ``filesystem()`` uses for the location ``uri`` (``uri`` from ``self.uri``)."""


class LocalStorage(Storage):
    """Files below a local folder; writes go through a temporary file and a rename."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.base = Path(root)
        self.root = str(self.base)

    def uri(self, key: str) -> str:
        return str(self.base / key)

    def list(self, prefix: str) -> list[StoredObject]:
        top = self.base / prefix.rpartition("/")[0]
        if not top.is_dir():
            return []
        out = []
        for path in top.rglob("*"):
            key = path.relative_to(self.base).as_posix()
            if key.startswith(prefix) and ".tmp-" not in path.name and path.is_file():
                st = path.stat()
                out.append(StoredObject(key, datetime.fromtimestamp(st.st_mtime, UTC), st.st_size))
        return sorted(out, key=lambda o: o.key)

    def read(self, key: str) -> tuple[bytes, str]:
        path = self.base / key
        data = path.read_bytes()
        return data, self._stamp(path) or ""

    def _temp(self, key: str, data: bytes) -> Path:
        path = self.base / key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return Path(tmp)

    def write(self, key: str, data: bytes) -> None:
        os.replace(self._temp(key, data), self.base / key)

    def create(self, key: str, data: bytes) -> None:
        tmp = self._temp(key, data)
        try:
            os.link(tmp, self.base / key)  # link refuses an existing name: an atomic create
        except FileExistsError:
            raise WriteConflictError(f"{self.uri(key)} exists already") from None
        finally:
            tmp.unlink()

    def replace(self, key: str, data: bytes, tag: str | None) -> None:
        import fcntl

        lock = self.base / f"{key}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            if self._stamp(self.base / key) != tag:
                raise WriteConflictError(f"{self.uri(key)} changed since it was read")
            self.write(key, data)

    def upload(self, local: Path, key: str) -> None:
        path = self.base / key
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, path)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.base / key).unlink()

    @staticmethod
    def _stamp(path: Path) -> str | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return f"{st.st_mtime_ns}-{st.st_size}-{st.st_ino}"

    def tag(self, key: str) -> str | None:
        return self._stamp(self.base / key)

    def filesystem(self) -> Any:
        import pyarrow.fs as pafs

        return pafs.LocalFileSystem()

    def fs_path(self, uri: str) -> str:
        return uri


def _client_error() -> type[Exception]:
    """botocore's error for a refused request (its code says which: 404, 412...)."""
    return require("botocore.exceptions", extra="s3").ClientError  # type: ignore[no-any-return]


def _endpoint() -> str | None:
    """The S3 endpoint from the standard AWS variables (MinIO, Ceph, R2...); None means AWS itself."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


class S3Storage(Storage):
    """Objects below ``s3://bucket/prefix``: pyarrow's S3FileSystem for data, boto3 for conditional writes.

    Credentials, region and endpoint come from the standard AWS settings (environment
    variables, ``~/.aws/config``, instance roles), as every AWS tool reads them.
    """

    def __init__(self, uri: str) -> None:
        rest = uri.removeprefix("s3://").strip("/")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ConfigError(f"object-storage location {uri!r} names no bucket (use s3://bucket/prefix)")
        self.bucket = bucket
        self.prefix = prefix
        self.root = f"s3://{bucket}/{prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    @cached_property
    def client(self) -> Any:
        purpose = f"object storage ({self.root})"
        boto3 = require("boto3", extra="s3", purpose=purpose)
        config = require("botocore.config", extra="s3", purpose=purpose)
        # A custom endpoint (MinIO, Ceph, moto) rarely serves bucket subdomains: path-style URLs.
        style = "path" if _endpoint() else "auto"
        options = config.Config(s3={"addressing_style": style}, retries={"max_attempts": 5, "mode": "standard"})
        return boto3.client("s3", endpoint_url=_endpoint(), region_name=_region(), config=options)

    @cached_property
    def _fs(self) -> Any:
        import pyarrow.fs as pafs

        options: dict[str, Any] = {}
        endpoint = _endpoint()
        if endpoint:
            scheme, _, host = endpoint.partition("://")
            options.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
        if _region():
            options["region"] = _region()
        return pafs.S3FileSystem(**options)

    def filesystem(self) -> Any:
        return self._fs

    def fs_path(self, uri: str) -> str:
        return uri.removeprefix("s3://")

    def list(self, prefix: str) -> list[StoredObject]:
        out = []
        strip = len(self._key(""))
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix))
        for page in pages:
            for item in page.get("Contents", []):
                out.append(StoredObject(item["Key"][strip:], item["LastModified"], int(item["Size"])))
        return sorted(out, key=lambda o: o.key)

    def _missing(self, exc: Exception) -> bool:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        return code in ("NoSuchKey", "404", "NotFound")

    def _lost(self, exc: Exception) -> bool:
        # 412: the precondition failed; 409: a concurrent conditional write to the same key is in flight.
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        return code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")

    def read(self, key: str) -> tuple[bytes, str]:
        try:
            got = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except _client_error() as exc:
            if self._missing(exc):
                raise FileNotFoundError(self.uri(key)) from None
            raise
        return got["Body"].read(), got["ETag"]

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def _conditional(self, key: str, data: bytes, **condition: str) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **condition)
        except _client_error() as exc:
            if self._lost(exc):
                raise WriteConflictError(f"{self.uri(key)} was written by someone else") from None
            raise

    def create(self, key: str, data: bytes) -> None:
        self._conditional(key, data, IfNoneMatch="*")

    def replace(self, key: str, data: bytes, tag: str | None) -> None:
        if tag is None:
            self._conditional(key, data, IfNoneMatch="*")
        else:
            self._conditional(key, data, IfMatch=tag)

    def upload(self, local: Path, key: str) -> None:
        self.client.upload_file(str(local), self.bucket, self._key(key))

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def tag(self, key: str) -> str | None:
        try:
            return str(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ETag"])
        except _client_error() as exc:
            if self._missing(exc):
                return None
            raise


_OPEN: dict[str, Storage] = {}


def open_storage(location: str | os.PathLike[str]) -> Storage:
    """The storage at ``location``: ``s3://bucket/prefix`` or a local folder (one client per location)."""
    text = str(location)
    if not is_uri(text):
        return LocalStorage(text)
    found = _OPEN.get(text)
    if found is None:
        found = _OPEN[text] = S3Storage(text)
    return found
