"""Feature: one named, typed column of a feature view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from featurestore.dsl.names import check_identifier
from featurestore.dsl.types import DType

__all__ = ["Feature"]

RESERVED = {"event_timestamp", "created_timestamp"}


class Feature:
    """A feature column: ``Feature("temp", Float64, checks=[in_range(-40, 130)])``."""

    def __init__(
        self,
        name: str,
        dtype: DType,
        *,
        description: str = "",
        checks: Sequence[Any] = (),
    ) -> None:
        self.name = check_identifier(name, "feature")
        if name in RESERVED:
            raise ValueError(f"feature name {name!r} is reserved")
        if not isinstance(dtype, DType):
            raise ValueError(f"feature {name!r}: dtype must be a featurestore dtype (Int64, Float64...), got {dtype!r}")
        self.dtype = dtype
        self.description = description
        self.checks = list(checks)

    def __repr__(self) -> str:
        return f"Feature({self.name!r}, {self.dtype})"
