"""Entity keys in requests: which key dtypes can be served, and request values -> online store keys."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from featurestore.dsl.types import DType
from featurestore.errors import InvalidRequestError, RequestError
from featurestore.online.codec import KEY_SEPARATOR
from featurestore.registry.discover import SERVABLE_KEY_DTYPES

__all__ = ["KEY_DTYPES", "check_key_dtypes", "entity_keys"]

KEY_DTYPES = SERVABLE_KEY_DTYPES
_INT_NAMES = {"Int64", "Int32"}


def check_key_dtypes(view: str, join_keys: dict[str, DType]) -> None:
    """Refuse views whose join keys the online store cannot address (a 422 over HTTP)."""
    bad = {k: str(t) for k, t in join_keys.items() if str(t) not in KEY_DTYPES}
    if bad:
        raise InvalidRequestError(
            f"feature view {view!r}: join keys {bad} cannot be served online (use Int64, Int32 or String keys)"
        )


def _bad_type(name: str, dtype: str, value: Any) -> RequestError:
    if type(value) is str and KEY_SEPARATOR in value:
        return InvalidRequestError(
            f"entity key {name!r}: value {value!r} holds the character U+001F, which no key may contain"
        )
    if dtype in _INT_NAMES and type(value) is float and value.is_integer() and abs(value) >= 2**63:
        # JSON integers past 64 bits reach us as floats: say so rather than blame the type.
        return InvalidRequestError(
            f"entity key {name!r} is {dtype}; value {value!r} is a number outside the 64-bit integer range"
        )
    hint = " (integers are sent as JSON integers or as strings of digits)" if dtype in _INT_NAMES else ""
    return InvalidRequestError(
        f"entity key {name!r} is {dtype}; value {value!r} ({type(value).__name__}) has the wrong type{hint}"
    )


_INT_TEXT = re.compile(r"-?[0-9]{1,19}")
# The values a key of each integer dtype can hold: no stored entity has a key outside them.
_INT_RANGE = {"Int64": (-(2**63), 2**63 - 1), "Int32": (-(2**31), 2**31 - 1)}


def _int_keys(name: str, dtype: str, values: list[Any]) -> None:
    """Check an integer key column, converting exact-integer strings (``"1001"``) in place, as Feast
    does; a value outside the dtype's range is refused (as a push refuses it)."""
    for v in values:
        if type(v) is not int:
            break
    else:
        _in_range(name, dtype, values)  # the usual case: every value already an int
        return
    for i, v in enumerate(values):
        if type(v) is not int:
            if type(v) is str and _INT_TEXT.fullmatch(v):
                values[i] = int(v)
            else:
                raise _bad_type(name, dtype, v)
    _in_range(name, dtype, values)


def _in_range(name: str, dtype: str, values: list[int]) -> None:
    lo, hi = _INT_RANGE[dtype]
    if values and (min(values) < lo or max(values) > hi):
        bad = next(v for v in values if not lo <= v <= hi)
        raise InvalidRequestError(f"entity key {name!r} is {dtype}; value {bad} is outside its range [{lo}, {hi}]")


def entity_keys(entities: dict[str, list[Any]], join_keys: Sequence[str], dtypes: Sequence[str], n: int) -> list[str]:
    """Encode the request's entity columns for one view into store keys, checking value types.

    Integer keys sent as strings of digits are converted in the request's lists, so a response
    echoes them as the integers they stand for.
    """
    columns = []
    for name, dtype in zip(join_keys, dtypes, strict=True):
        values = entities.get(name)
        if values is None:
            raise InvalidRequestError(f"entity key {name!r} is missing (given: {sorted(entities)})")
        if dtype in _INT_NAMES:
            _int_keys(name, dtype, values)
        else:
            for v in values:
                if type(v) is not str or KEY_SEPARATOR in v:
                    raise _bad_type(name, dtype, v)
        columns.append(values)
    if len(columns) == 1:
        return list(map(str, columns[0]))
    return [KEY_SEPARATOR.join(str(v) for v in vals) for vals in zip(*columns, strict=True)]
