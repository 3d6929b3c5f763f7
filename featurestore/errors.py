"""One exception family for everything featurestore raises on purpose."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator

__all__ = [
    "redact",
    "one_line",
    "FeatureStoreError",
    "ConfigError",
    "MissingExtraError",
    "DefinitionError",
    "RegistryError",
    "BreakingChangeError",
    "IngestError",
    "OfflineWriteError",
    "TrainingSetError",
    "OnlineStoreError",
    "StoreUnavailableError",
    "ValidationError",
    "GateRejectedError",
    "RequestError",
    "MalformedRequestError",
    "ForbiddenError",
    "NotFoundError",
    "PayloadTooLargeError",
    "InvalidRequestError",
    "NotReadyError",
    "did_you_mean",
    "offline_write_errors",
]


class FeatureStoreError(Exception):
    """Base class: every error featurestore raises deliberately derives from it."""


class ConfigError(FeatureStoreError):
    """featurestore.toml or a FEATURESTORE_* variable is invalid."""


class MissingExtraError(ConfigError):
    """An optional integration is used without its extra installed; the message names the pip command."""


class DefinitionError(FeatureStoreError):
    """A definitions module or object is invalid; the message names module and object."""

    def __init__(self, message: str, *, module: str | None = None, obj: str | None = None):
        where = ", ".join(p for p in (f"module {module}" if module else "", f"object {obj!r}" if obj else "") if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.module = module
        self.obj = obj


class RegistryError(FeatureStoreError):
    """The registry file is missing, unreadable or refers to something unknown."""


class BreakingChangeError(RegistryError):
    """An apply would remove a feature or change its dtype; pass allow_breaking to accept."""


class IngestError(FeatureStoreError):
    """Reading a source, running a transform or writing the offline store failed."""


class OfflineWriteError(IngestError):
    """The offline store could not be written (disk full, permissions, I/O); nothing of the write was stored.

    The message names the file at fault where the system said which; ``public`` is the same without
    it (what the server answers: its paths are not the client's business)."""

    def __init__(self, message: str, public: str | None = None) -> None:
        super().__init__(message)
        self.public = public or message


class TrainingSetError(FeatureStoreError):
    """A training-set request is invalid (entity frame, feature references, manifest)."""


class OnlineStoreError(FeatureStoreError):
    """The online store rejected an operation."""


class StoreUnavailableError(OnlineStoreError):
    """The online store cannot be reached (answer 503, retry later)."""


class ValidationError(FeatureStoreError):
    """A check or gate is misconfigured."""


class GateRejectedError(FeatureStoreError):
    """A validation gate rejected a whole batch; nothing was written."""

    def __init__(self, message: str, result: object | None = None):
        super().__init__(message)
        self.result = result


class RequestError(FeatureStoreError):
    """A lookup or push request cannot be answered as asked (the server maps each kind to a 4xx)."""


class MalformedRequestError(RequestError):
    """The request is not well-formed (not JSON, not an object)."""


class ForbiddenError(RequestError):
    """The API key may not do what the request asks."""


class NotFoundError(RequestError):
    """A view, feature, service or other named thing does not exist."""


class PayloadTooLargeError(RequestError):
    """The request is larger than the configured limit."""


class InvalidRequestError(RequestError):
    """The request is well-formed but its content is wrong (key types, lengths, rows, limits)."""


class NotReadyError(FeatureStoreError):
    """The server cannot answer yet (no good registry was ever loaded); a retry may succeed."""


def one_line(exc: BaseException) -> str:
    """``"TypeName: first line"`` of a library's exception, for a message that must stay one line.

    polars appends the failing expression on further lines, which a user of the CLI cannot act on.
    """
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A hint for a mistyped ``name``: ``" (did you mean 'trips'?)"``, or ``""`` when nothing is close.

    Meant to be appended to an error message: ``f"unknown view {name!r}{did_you_mean(name, views)}"``.
    """
    import difflib

    options = sorted({c for c in choices if isinstance(c, str)})
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6) if isinstance(name, str) else []
    if not close:
        lowered = {c.lower(): c for c in options}
        close = [lowered[name.lower()]] if isinstance(name, str) and name.lower() in lowered else []
    return f" (did you mean {close[0]!r}?)" if close else ""


# Secrets never reach a message: every error, log line and printed URL goes through redact.
# The look-behind starts a scheme only where a run of scheme characters starts: without it a long
# run with no "://" (a 100 kB unknown name echoed in an error) is re-scanned from every position,
# quadratic time, and one request held the server's event loop for a minute.
_URL_PASSWORD = re.compile(
    r"(?<![a-z0-9+.-])(?P<scheme>[a-z0-9+.-]+://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@", re.I
)
_SECRET_WORDS = re.compile(
    r"(?P<k>\b(?:password|passwd|api[_-]?key|token|secret)\b\s*[=:]\s*)(?P<v>[^\s,;&'\"]+)", re.I
)
_BEARER = re.compile(r"(?P<k>\bBearer\s+)(?P<v>[^\s,;'\"]+)", re.I)


def redact(text: str) -> str:
    """``text`` with passwords in URLs, bearer tokens and ``password=...``/``api_key=...`` values masked.

    ``redact("redis://:s3cret@redis:6379/0")`` -> ``"redis://:***@redis:6379/0"``.
    """
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    text = _SECRET_WORDS.sub(lambda m: f"{m['k']}***", text)
    return _BEARER.sub(lambda m: f"{m['k']}***", text)


@contextlib.contextmanager
def offline_write_errors(what: str) -> Iterator[None]:
    """Turn an I/O failure while writing under the offline root (disk full, permission denied; polars
    reports them as a ComputeError) into an ``OfflineWriteError`` naming ``what`` and the cause, without
    the server's paths. Used around writes that store nothing unless they complete (a commit, the gate's
    report and quarantine written before any row), so the message can say so."""
    import polars as pl

    try:
        yield
    except (ConnectionError, TimeoutError):
        raise  # no answer (object storage): the write may have landed, so it is not said to have failed
    except (OSError, pl.exceptions.ComputeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        where = f": {exc.filename}" if isinstance(exc, OSError) and exc.filename else ""
        template = "{what}: the offline store could not be written ({reason}{where}); nothing of this write was stored"
        raise OfflineWriteError(
            template.format(what=what, reason=reason, where=where),
            template.format(what=what, reason=reason, where=""),
        ) from exc
