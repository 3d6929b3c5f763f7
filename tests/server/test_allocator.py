"""The server keeps freed heap memory: building and freeing a large response costs no page faults."""

from __future__ import annotations

import platform
import resource

import pytest

from featurestore.server.allocator import keep_freed_memory


def _faults_building_responses(size: int, times: int) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(times):
        body = b"".join([b"x" * (size // 4), b"y" * (size // 4), b"z" * (size // 4), bytes([i % 256]) * (size // 4)])
        del body
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")
def test_large_responses_reuse_freed_memory() -> None:
    assert keep_freed_memory()
    _faults_building_responses(110_000, 10)  # warm: the heap grows once
    assert _faults_building_responses(110_000, 500) < 50  # glibc's defaults: ~25 per response
