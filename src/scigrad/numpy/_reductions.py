"""Reductions: sum, mean, prod, var, std, max/min, cumsum, ..."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.primitive import Primitive, ShapeDtype
from ._util import normalize_axis, shape_of


def _reduced_shape(shape: tuple[int, ...], axis: tuple[int, ...] | None, keepdims: bool):
    axes = range(len(shape)) if axis is None else axis
    if keepdims:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def _reduction_shape(x: ShapeDtype, *, axis, keepdims) -> ShapeDtype:
    return ShapeDtype(_reduced_shape(x.shape, axis, keepdims), x.dtype)


def expand_reduced(g: Any, shape: tuple[int, ...], axis: tuple[int, ...] | None, keepdims: bool):
    """Reshape the cotangent of a reduction so that it broadcasts against the input."""
    if keepdims:
        return g
    from ._shape import reshape

    return reshape(g, _reduced_shape(shape, axis, True))


def _sum_vjp(g: Any, ans: Any, x: Any, *, axis, keepdims) -> Any:
    from ._shape import broadcast_to_p

    shape = shape_of(x)
    if axis is not None:
        g = expand_reduced(g, shape, axis, keepdims)
    return broadcast_to_p.bind(g, shape=shape)


sum_p = Primitive(
    "sum",
    lambda x, *, axis, keepdims: np.add.reduce(x, axis=axis, keepdims=keepdims),
    shape=_reduction_shape,
)
sum_p.defjvp(lambda t, ans, x, *, axis, keepdims: sum_p.bind(t, axis=axis, keepdims=keepdims))
sum_p.defvjp(_sum_vjp)


def sum(a: Any, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Sum of array elements over the given axes (as ``numpy.sum``)."""
    axis = normalize_axis(axis, len(shape_of(a)))
    out = sum_p.bind(a, axis=axis, keepdims=keepdims)
    return out if dtype is None else out.astype(dtype)


def mean(a: Any, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
    """Arithmetic mean over the given axes (as ``numpy.mean``)."""
    shape = shape_of(a)
    axes = normalize_axis(axis, len(shape))
    count = int(np.prod([shape[i] for i in (range(len(shape)) if axes is None else axes)]))
    return sum(a, axes, dtype, keepdims) / count


__all__ = ["mean", "sum"]
