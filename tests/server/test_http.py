"""The server's HTTP protocol: a response's writes leave together, in order, before any close."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from featurestore.server.http import CorkedTransport, http_protocol
from tests.conftest import free_port


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def writelines(self, chunks: list[bytes]) -> None:
        self.calls.append(("writelines", list(chunks)))

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_writes_of_one_turn_leave_in_one_call_and_close_sends_them_first() -> None:
    async def run() -> None:
        inner = _Recorder()
        corked = CorkedTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
        corked.write(b"body")
        assert inner.calls == []  # held until the end of the turn
        await asyncio.sleep(0)
        assert inner.calls == [("writelines", [b"HTTP/1.1 200 OK\r\n\r\n", b"body"])]
        corked.write(b"last")
        corked.close()
        assert inner.calls[1:] == [("writelines", [b"last"]), ("close", None)]
        assert corked.get_extra_info("peername") == "info:peername"  # the rest is the wrapped transport's
        await asyncio.sleep(0)
        assert len(inner.calls) == 3  # nothing written twice

    asyncio.run(run())


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b"x" * int(scope["path"].strip("/") or 0)
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=port, http=http_protocol(), log_level="warning", lifespan="off"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield port
    srv.should_exit = True
    thread.join(10)


def _exchange(port: int, raw: bytes, until_closed: bool = False, responses: int = 1) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        got = b""
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return got
            got += chunk
            if not until_closed and got.count(b"HTTP/1.1 ") == responses and _complete(got):
                return got


def _complete(data: bytes) -> bool:
    last = data.rindex(b"HTTP/1.1 ")
    head, _, body = data[last:].partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return len(body) == length


def test_pipelined_keep_alive_requests_get_their_responses_in_order(server: int) -> None:
    raw = b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\nGET /200000 HTTP/1.1\r\nHost: x\r\n\r\nGET /0 HTTP/1.1\r\nHost: x\r\n\r\n"
    got = _exchange(server, raw, responses=3)
    parts = got.split(b"HTTP/1.1 200 OK\r\n")[1:]
    bodies = [p.partition(b"\r\n\r\n")[2] for p in parts]
    assert [len(b) for b in bodies] == [3, 200000, 0]


def test_a_response_before_connection_close_is_sent_whole(server: int) -> None:
    got = _exchange(server, b"GET /5000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", until_closed=True)
    assert got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b"x" * 5000)
    assert b"connection: close" in got.lower()


def test_head_and_a_bad_request_are_answered(server: int) -> None:
    assert _exchange(server, b"HEAD /7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", until_closed=True).startswith(
        b"HTTP/1.1 200 OK"
    )
    assert _exchange(server, b"NONSENSE\r\n\r\n", until_closed=True).startswith(b"HTTP/1.1 400")
