"""Sample metadata as it is kept: checked and copied when the sample is recorded.

The rule (the README's quick start says the same):

- Metadata must be a dict; anything else is a ValueError naming the series.
- It is copied, so changing the caller's dict afterwards changes nothing recorded.
- Keys become ``str(key)``. ``None``, bool, int, float and str values are kept; a non-finite
  float, or an int beyond float range, becomes its ``str()``; numpy scalars become Python ones.
- One level of nested dict, list or tuple is kept (a tuple as a list), its items under the same
  rule. Anything deeper, and any other object, becomes ``str(obj)``, or ``"<unprintable
  TypeName>"`` when that raises.
- Strings, keys too, are cut to ``MAX_TEXT`` characters (the last one "…"), dicts to
  ``MAX_ITEMS`` keys and lists to ``MAX_ITEMS`` items. A cut dict gets a ``"…truncated"`` key
  holding how many keys it lost; a cut list ends with a ``"…truncated N items"`` item.

The copy always passes ``json.dumps`` without ``default=``: whatever a caller passes, the
background flusher can write it (a 5,000-deep dict used to stop it with a RecursionError).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

__all__ = ["MAX_ITEMS", "MAX_TEXT", "TRUNCATED", "copy_metadata", "short_repr"]

MAX_TEXT = 1000
MAX_ITEMS = 64
TRUNCATED = "…truncated"
_OTHER = object()  # "not a scalar": the caller decides between nesting and str()


def copy_metadata(metadata: object, kind: str, name: object = None) -> dict[str, Any]:
    """A JSON-safe copy of ``metadata`` under the module's rule.

    Raises:
        ValueError: ``metadata`` is not a dict (the message names ``kind`` and ``name``).
    """
    if not isinstance(metadata, dict):
        owner = kind if name is None else f"{kind} {short_repr(name)}"
        raise ValueError(f"{owner}: metadata must be a dict, got {short_repr(metadata)}")
    return _dict(metadata, nested=True)


def short_repr(value: object) -> str:
    """``repr(value)`` cut to ``MAX_TEXT`` characters, for error messages that must not fail.

    A 5,000-digit int or a raising ``__repr__`` would otherwise replace the error being raised.
    """
    try:
        text = repr(value)
    except Exception:
        return _unprintable(value)
    return _cut(text)


def _dict(source: dict[Any, Any], *, nested: bool) -> dict[str, Any]:
    copy: dict[str, Any] = {}
    for key, value in itertools.islice(source.items(), MAX_ITEMS):
        text = key if type(key) is str and len(key) <= MAX_TEXT else _text(key)
        copy[text] = _value(value, nested)
    if len(source) > MAX_ITEMS:
        copy[TRUNCATED] = len(source) - MAX_ITEMS
    return copy


def _list(source: list[Any] | tuple[Any, ...]) -> list[Any]:
    copy = [_value(item, False) for item in source[:MAX_ITEMS]]
    if len(source) > MAX_ITEMS:
        copy.append(f"{TRUNCATED} {len(source) - MAX_ITEMS} items")
    return copy


def _value(value: object, nested: bool) -> Any:
    if type(value) is str and len(value) <= MAX_TEXT:  # the usual session id: no further call
        return value
    scalar = _scalar(value)
    if scalar is not _OTHER:
        return scalar
    if nested and isinstance(value, dict):
        return _dict(value, nested=False)
    if nested and isinstance(value, list | tuple):
        return _list(value)
    return _text(value)


def _scalar(value: object) -> Any:
    """The JSON scalar ``value`` stands for, or ``_OTHER``."""
    if isinstance(value, np.generic):
        value = value.item()  # np.float32 -> float, np.int64 -> int, np.bool_ -> bool, ...
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            return _text(value)
        return int(value)  # an IntEnum as its number
    if isinstance(value, float):
        number = float(value)
        return number if math.isfinite(number) else str(number)
    return _OTHER


def _text(value: object) -> str:
    """``str(value)`` cut to ``MAX_TEXT``; a str subclass as its characters (not its __str__)."""
    try:
        text = str.__str__(value) if isinstance(value, str) else str(value)
    except Exception:  # a raising __str__, a 5,000-deep list (RecursionError), a huge int
        return _unprintable(value)
    return _cut(text)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _unprintable(value: object) -> str:
    return f"<unprintable {type(value).__name__}>"
