"""Server logs: one JSON object per line when stderr is not a terminal, secrets redacted, no feature values."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import orjson

from featurestore.errors import redact

__all__ = ["LOGGER", "AccessLog", "JsonFormatter", "TextFormatter", "configure_logging"]

LOGGER = "featurestore.server"
_FIELDS = ("request_id", "method", "path", "status", "duration_ms", "client", "api_key")


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", request fields...}`` per line; the message is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": redact(record.getMessage()),
        }
        for name in _FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["error"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(out).decode()


class TextFormatter(logging.Formatter):
    """A readable line for terminals, with the same redaction."""

    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{n}={record.__dict__[n]}" for n in _FIELDS if record.__dict__.get(n) is not None)
        line = f"{record.levelname.lower():<7} {redact(record.getMessage())}" + (f"  {extra}" if extra else "")
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (test runners and daemons swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(level: str = "info", stream: Any = None, json: bool | None = None) -> logging.Logger:
    """The server logger writing to ``stream`` (stderr): JSON lines unless it is a terminal."""
    if json is None:
        shown = sys.stderr if stream is None else stream
        json = not (hasattr(shown, "isatty") and shown.isatty())
    logger = logging.getLogger(LOGGER)
    logger.setLevel(level.upper())
    logger.propagate = False
    for handler in list(logger.handlers):
        if getattr(handler, "_featurestore", False):
            logger.removeHandler(handler)
    handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    handler._featurestore = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    return logger


class AccessLog:
    """One line per request, written straight to stderr (the logging module costs ~10 us a line).

    Same shape as the ``JsonFormatter`` lines (``"message": "request"``); silent above level info.
    """

    def __init__(self, level: str = "info", stream: Any = None, json: bool | None = None) -> None:
        self.enabled = level.lower() in ("debug", "info")
        self.stream = stream
        shown = sys.stderr if stream is None else stream
        self.json = not (hasattr(shown, "isatty") and shown.isatty()) if json is None else json
        self.pid = os.getpid()
        self._second = -1
        self._second_text = ""

    def write(self, fields: dict[str, Any]) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:  # the date and time part changes once a second, not per line
            self._second, self._second_text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        stamp = f"{self._second_text}.{int(now * 1000) % 1000:03d}Z"
        if self.json:
            line = orjson.dumps(
                {"time": stamp, "level": "info", "logger": LOGGER, "pid": self.pid, "message": "request", **fields}
            ).decode()
        else:
            line = "info    request  " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        try:
            (sys.stderr if self.stream is None else self.stream).write(line + "\n")
        except (OSError, ValueError):  # a closed or broken stderr must never fail a request
            pass
