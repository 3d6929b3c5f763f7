"""Time values as the whole package reads them: aware UTC datetimes (naive means UTC)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["utc_datetime"]


def utc_datetime(value: Any) -> datetime | None:
    """A datetime/ISO string as an aware UTC datetime (naive means UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise ValueError(f"expected a datetime or ISO string, got {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
