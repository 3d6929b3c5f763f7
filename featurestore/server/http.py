"""The HTTP protocol the server runs under uvicorn: httptools, with each turn's writes leaving in one system call."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["CorkedTransport", "http_protocol"]


class CorkedTransport:
    """A transport whose writes made in one turn of the event loop go out together, in one ``writelines``.

    uvicorn writes a response's status line and headers when the app starts it, and the body
    when the app sends it: two system calls (and two TCP segments) per response, each costing
    more than a one-entity lookup's whole JSON work on a busy machine. Held until the end of the
    turn, they leave as one ``writev``. Closing sends what is held first; everything else is the
    wrapped transport's.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._held:
            self._loop.call_soon(self._flush)
        self._held.append(data)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        held, self._held = self._held, []
        if held and not self._transport.is_closing():
            self._transport.writelines(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


try:  # uvicorn[standard] brings httptools; without it the server runs h11 as uvicorn would
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpTools
except ImportError:  # pragma: no cover
    _HttpTools = None  # type: ignore[assignment,misc]


if _HttpTools is not None:

    class CorkedHttpToolsProtocol(_HttpTools):  # type: ignore[misc,valid-type]
        """uvicorn's httptools protocol writing through a :class:`CorkedTransport` (module level: workers pickle it)."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(CorkedTransport(transport, self.loop))  # type: ignore[arg-type]


def http_protocol() -> Any:
    """The ``http`` setting for uvicorn: :class:`CorkedHttpToolsProtocol`, or "h11" without httptools."""
    return "h11" if _HttpTools is None else CorkedHttpToolsProtocol
