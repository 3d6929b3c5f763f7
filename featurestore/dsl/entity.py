"""Entity: what features describe, identified by one or more typed join keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from featurestore.dsl._origin import defined_in
from featurestore.dsl.names import check_identifier
from featurestore.dsl.types import DType

__all__ = ["Entity"]


class Entity:
    """An entity such as a driver or an airport.

    ``join_keys`` is a list of key names or a mapping of key name to dtype. Keys given
    as a list take ``dtype`` when set; otherwise their type is read from each view's
    data when the definitions are applied (integers become Int64, strings String)::

        driver = Entity("driver", join_keys=["driver_id"])
        route = Entity("route", join_keys={"origin": String, "dest": String})
    """

    def __init__(
        self,
        name: str,
        join_keys: Sequence[str] | Mapping[str, DType],
        *,
        dtype: DType | None = None,
        description: str = "",
    ) -> None:
        self.module = defined_in()
        self.name = check_identifier(name, "entity")
        if isinstance(join_keys, str):
            join_keys = [join_keys]
        keys: dict[str, DType | None] = (
            dict(join_keys) if isinstance(join_keys, Mapping) else {k: dtype for k in join_keys}
        )
        if not keys:
            raise ValueError(f"entity {name!r} needs at least one join key")
        for key, kdt in keys.items():
            check_identifier(key, f"entity {name!r} join key")
            if kdt is not None and (not isinstance(kdt, DType) or kdt.is_list):
                raise ValueError(f"entity {name!r} join key {key!r}: dtype must be a scalar DType, got {kdt!r}")
        self.join_keys = keys
        self.description = description

    def __repr__(self) -> str:
        return f"Entity({self.name!r}, join_keys={self.join_keys!r})"
