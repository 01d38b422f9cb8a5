"""Strict JSON: the one way the project writes JSON (reports, manifests, cache keys).

JSON has no NaN or Infinity; Python's :func:`json.dumps` writes them anyway
(``NaN``, ``Infinity``) unless told ``allow_nan=False``, and its error then
names neither the file nor the value. :func:`dumps` converts NumPy values to
plain Python, refuses every non-finite number with one line naming the
document and the key path of the value, and writes with ``allow_nan=False``::

    summary.json: networks[2].speedup: nan is not a finite number (JSON has no NaN or Infinity)

Pure Python / NumPy.
"""

from __future__ import annotations

import json
import math
from pathlib import PurePath

import numpy as np

__all__ = ["JsonError", "dumps", "to_plain"]


class JsonError(ValueError):
    """A value cannot be written as strict JSON; the message is one line naming the document and key path."""


def _key_path(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def to_plain(obj, what: str, default=None, path: str = ""):
    """``obj`` as plain JSON types (dict with str keys, list, str, int, float, bool, None).

    NumPy scalars and arrays become Python numbers and lists, tuples become
    lists, paths become strings; anything else goes through ``default`` (e.g.
    ``str``) or is refused. Every float must be finite.

    Raises
    ------
    JsonError
        ``<what>: <key path>: <value> is not a finite number ...`` or
        ``... cannot be written as JSON``.
    """
    where = f"{what}: {path or '(top level)'}"
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if not math.isfinite(f):
            raise JsonError(f"{where}: {f} is not a finite number (JSON has no NaN or Infinity)")
        return f
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if isinstance(k, np.generic):
                k = k.item()
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise JsonError(f"{where}: key {k!r} is not a string")
            out[k if isinstance(k, str) else json.dumps(k)] = to_plain(v, what, default, _key_path(path, k))
        return out
    if isinstance(obj, (list, tuple)):
        return [to_plain(v, what, default, f"{path}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return to_plain(obj.tolist(), what, default, path)
    if isinstance(obj, PurePath):
        return str(obj)
    if default is not None:
        return to_plain(default(obj), what, None, path)
    raise JsonError(f"{where}: a {type(obj).__name__} cannot be written as JSON")


def dumps(obj, *, what: str, indent: int | None = 2, sort_keys: bool = False, default=None,
          newline: bool = False, compact: bool = False) -> str:
    """``obj`` as strict JSON text (``allow_nan=False``), every number finite.

    Parameters
    ----------
    obj
        The document.
    what : str
        Its name in messages (the file name: ``summary.json``).
    indent : int or None
        As :func:`json.dumps`.
    sort_keys : bool
        As :func:`json.dumps`.
    default : callable, optional
        Converts values of other types (``str``); without it they are refused.
    newline : bool
        End the text with a newline.
    compact : bool
        No spaces after separators (``(",", ":")``): canonical text for digests.

    Raises
    ------
    JsonError
        One line naming ``what`` and the key path of a non-finite number or an unwritable value.
    """
    text = json.dumps(to_plain(obj, what, default), indent=indent, sort_keys=sort_keys, allow_nan=False,
                      separators=(",", ":") if compact else None)
    return text + "\n" if newline else text
