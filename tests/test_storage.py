"""The storage contract, run over local disk and a real S3 server (moto): whole objects and conditional writes."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featurestore.storage import LocalStorage, Storage, WriteConflictError, is_uri, open_storage


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "root")
    return open_storage(request.getfixturevalue("s3_root"))


def test_write_read_list_delete(storage: Storage) -> None:
    storage.write("a/b/one.json", b"1")
    storage.write("a/two.json", b"2")
    storage.write("c/three.json", b"3")
    assert storage.read("a/b/one.json")[0] == b"1"
    assert [o.key for o in storage.list("a/")] == ["a/b/one.json", "a/two.json"]
    assert [o.size for o in storage.list("c/")] == [1]
    assert storage.exists("a/two.json") and not storage.exists("a/nope.json")
    storage.delete("a/two.json")
    storage.delete("a/two.json")  # absent is fine
    assert [o.key for o in storage.list("a/")] == ["a/b/one.json"]
    with pytest.raises(FileNotFoundError):
        storage.read("a/two.json")


def test_create_is_won_once(storage: Storage) -> None:
    storage.create("log/1.json", b"first")
    with pytest.raises(WriteConflictError):
        storage.create("log/1.json", b"second")
    assert storage.read("log/1.json")[0] == b"first"


def test_create_race_has_one_winner(storage: Storage) -> None:
    won: list[int] = []

    def attempt(i: int) -> None:
        try:
            storage.create("race.json", str(i).encode())
            won.append(i)
        except WriteConflictError:
            pass

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert storage.read("race.json")[0] == str(won[0]).encode()


def test_replace_checks_the_tag(storage: Storage) -> None:
    storage.replace("reg.json", b"v1", None)
    with pytest.raises(WriteConflictError):
        storage.replace("reg.json", b"again", None)  # None: only if absent
    data, tag = storage.read("reg.json")
    assert storage.tag("reg.json") == tag
    storage.replace("reg.json", b"v2", tag)
    with pytest.raises(WriteConflictError):
        storage.replace("reg.json", b"stale", tag)
    assert storage.read("reg.json")[0] == b"v2"
    assert storage.tag("nothing.json") is None


def test_parquet_through_the_filesystem(storage: Storage, tmp_path: Path) -> None:
    local = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), local)
    storage.upload(local, "v/date=2024-01-01/part.parquet")
    uri = storage.uri("v/date=2024-01-01/part.parquet")
    table = pq.read_table(storage.fs_path(uri), filesystem=storage.filesystem())
    assert table.column("x").to_pylist() == [1, 2, 3]
    assert is_uri(uri) == is_uri(storage.root)
