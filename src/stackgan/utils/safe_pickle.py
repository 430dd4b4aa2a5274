"""A restricted unpickler for the data files of the original StackGAN releases.

The reference datasets ship Python 2 pickles (``filenames.pickle``, ``class_info.pickle``,
``char-CNN-RNN-embeddings.pickle``). ``pickle.load`` on such a file runs whatever callable the
file names, so a crafted split file would run a shell command during ``stackgan data check``.
:func:`safe_load` resolves only the handful of globals those files need (numpy's array and
scalar reconstructors, ``dtype``, and ``_codecs.encode`` which protocol-2 pickles use for
bytes); anything else is refused before it is called. The result must then be plain data:
lists, tuples, dicts and sets of str, bytes, int, float, bool, None and numpy arrays or
scalars of plain (non-object) dtypes.
"""

from __future__ import annotations

import _codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

# numpy moved its internals from numpy.core to numpy._core in 2.0; pickles name either
_NP_CORE = getattr(np, "_core", None) or np.core
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _codecs.encode,  # protocol 2 writes bytes as encode(str, 'latin1')
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,  # Python 2 names
    ("__builtin__", "frozenset"): frozenset,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _NP_CORE.multiarray._reconstruct
    _ALLOWED[(_mod, "scalar")] = _NP_CORE.multiarray.scalar

MAX_DEPTH = 64  # nesting of containers in a data file; the originals use 2


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle that names a callable outside the allowed set, or holds non-plain data."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load {module}.{name}: a data file may hold only lists, dicts, "
                "strings, numbers and numpy arrays"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing a persistent id: not a plain data pickle")


def _check_plain(root: Any) -> None:
    """Walk ``root`` once per distinct object, iteratively: a pickle can share one list under
    many parents (a list holding the same list twice, 60 levels deep, is 2^60 paths but 60
    objects), so containers already checked are skipped by identity."""
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        obj, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UnsafePickleError(f"data nested deeper than {MAX_DEPTH} levels")
        if obj is None or isinstance(obj, str | bytes | int | float | bool | np.generic):
            if isinstance(obj, np.generic) and obj.dtype.hasobject:
                raise UnsafePickleError("numpy object scalars are not plain data")
            continue
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                raise UnsafePickleError("numpy arrays of Python objects are not plain data")
            continue
        if not isinstance(obj, list | tuple | set | frozenset | dict):
            raise UnsafePickleError(f"unexpected {type(obj).__name__} in a data file")
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        items = [x for kv in obj.items() for x in kv] if isinstance(obj, dict) else list(obj)
        stack.extend((item, depth + 1) for item in items)


def safe_loads(data: bytes, encoding: str = "latin1") -> Any:
    """Unpickle plain data from ``data``; ``UnsafePickleError`` for anything else.
    ``encoding="latin1"`` reads Python 2 pickles' byte strings as the originals need."""
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()
    except RecursionError:
        raise UnsafePickleError("data nested too deeply") from None
    except pickle.UnpicklingError:
        raise
    except Exception as exc:  # a damaged pickle fails in many ways (EOF, struct, type errors)
        raise pickle.UnpicklingError(f"not a valid pickle ({type(exc).__name__}: {exc})") from exc
    _check_plain(obj)
    return obj


def safe_load(path: str | Path, encoding: str = "latin1") -> Any:
    """:func:`safe_loads` of a file's bytes."""
    return safe_loads(Path(path).read_bytes(), encoding=encoding)
