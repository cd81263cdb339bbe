"""Array creation. Created arrays are constants; ``*_like`` accept traced arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.primitive import Tracer
from ._util import dtype_of, shape_of

# Plain constructors need no rule: they take no array input to differentiate.
zeros = np.zeros
ones = np.ones
empty = np.empty
full = np.full
eye = np.eye
identity = np.identity
arange = np.arange
linspace = np.linspace
logspace = np.logspace
geomspace = np.geomspace
meshgrid = np.meshgrid
indices = np.indices
tri = np.tri


def _like(a: Any, dtype: Any, shape: Any) -> tuple[Any, tuple[int, ...]]:
    return (dtype_of(a) if dtype is None else dtype), (shape_of(a) if shape is None else shape)


def zeros_like(a: Any, dtype: Any = None, shape: Any = None) -> np.ndarray:
    """Zeros with the shape and dtype of ``a`` (traced or not)."""
    dt, sh = _like(a, dtype, shape)
    return np.zeros(sh, dt)


def ones_like(a: Any, dtype: Any = None, shape: Any = None) -> np.ndarray:
    """Ones with the shape and dtype of ``a`` (traced or not)."""
    dt, sh = _like(a, dtype, shape)
    return np.ones(sh, dt)


def empty_like(a: Any, dtype: Any = None, shape: Any = None) -> np.ndarray:
    dt, sh = _like(a, dtype, shape)
    return np.empty(sh, dt)


def full_like(a: Any, fill_value: Any, dtype: Any = None, shape: Any = None) -> Any:
    """``fill_value`` broadcast to the shape of ``a``; differentiable in ``fill_value``."""
    dt, sh = _like(a, dtype, shape)
    if isinstance(fill_value, Tracer):
        from ._shape import broadcast_to

        return broadcast_to(fill_value, sh)
    return np.full(sh, fill_value, dt)


def asarray(a: Any, dtype: Any = None) -> Any:
    """``a`` as an array; traced values pass through unchanged (no copy, no conversion)."""
    if isinstance(a, Tracer):
        return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
    if isinstance(a, list | tuple) and any(isinstance(v, Tracer) for v in _leaves(a)):
        from ._shape import stack

        return stack([asarray(v, dtype) for v in a])
    return np.asarray(a, dtype=dtype)


def array(a: Any, dtype: Any = None, copy: bool = True) -> Any:
    """Like :func:`asarray`; nested lists may contain traced values."""
    out = asarray(a, dtype)
    return out.copy() if copy and isinstance(out, np.ndarray) and out is a else out


def _leaves(a: Any):
    for v in a:
        if isinstance(v, list | tuple):
            yield from _leaves(v)
        else:
            yield v


__all__ = [
    "arange",
    "array",
    "asarray",
    "empty",
    "empty_like",
    "eye",
    "full",
    "full_like",
    "geomspace",
    "identity",
    "indices",
    "linspace",
    "logspace",
    "meshgrid",
    "ones",
    "ones_like",
    "tri",
    "zeros",
    "zeros_like",
]
