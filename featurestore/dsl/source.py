"""Sources: where a feature view's raw rows come from (Parquet, CSV, a DuckDB query)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from featurestore.dsl.names import check_identifier

__all__ = ["Source", "ParquetSource", "CsvSource", "SqlSource"]


class Source:
    """Base class: a timestamped table; it only describes itself, the offline engine reads it by ``kind``.

    ``timestamp`` names the event-time column; ``created`` optionally names a
    creation-time column that breaks ties between rows of the same key and event time.
    Naive timestamps are taken as UTC.
    """

    kind = "source"

    def __init__(self, *, timestamp: str = "event_timestamp", created: str | None = None) -> None:
        self.timestamp = check_identifier(timestamp, "source timestamp column")
        self.created = check_identifier(created, "source created column") if created else None

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this source in a view's version hash."""
        return {"kind": self.kind, "timestamp": self.timestamp, "created": self.created}


class _FileSource(Source):
    def __init__(self, path: str, *, timestamp: str = "event_timestamp", created: str | None = None) -> None:
        super().__init__(timestamp=timestamp, created=created)
        if not isinstance(path, str | Path) or not str(path):
            raise ValueError(f"{type(self).__name__}: path must be a non-empty string, got {path!r}")
        self.path = str(path)

    def resolve(self, repo: Path) -> str:
        """The path (or glob) with a relative one taken from ``repo``."""
        p = Path(self.path)
        return str(p if p.is_absolute() else repo / p)

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "path": self.path}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, timestamp={self.timestamp!r})"


class ParquetSource(_FileSource):
    """Parquet files: a path or a glob, relative to the repository folder."""

    kind = "parquet"


class CsvSource(_FileSource):
    """CSV files with a header row: a path or a glob, relative to the repository folder."""

    kind = "csv"


class SqlSource(Source):
    """A DuckDB query over files, e.g. ``SELECT * FROM 'data/*.parquet' WHERE ...``.

    Relative file paths in the query resolve against the repository folder.
    """

    kind = "sql"

    def __init__(self, query: str, *, timestamp: str = "event_timestamp", created: str | None = None) -> None:
        super().__init__(timestamp=timestamp, created=created)
        if not isinstance(query, str) or not query.strip():
            raise ValueError("SqlSource: query must be a non-empty SQL string")
        self.query = query.strip().rstrip(";")

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "query": self.query}

    def __repr__(self) -> str:
        return f"SqlSource({self.query[:40]!r}...)"
