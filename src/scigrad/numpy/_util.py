"""Helpers shared by the NumPy rules: shape rules, broadcasting undone, rule factories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.batching import BROADCASTING_SHAPE_RULES, move_axis
from ..core.lowrank import LowRankArray
from ..core.primitive import Primitive, ShapeDtype, Tracer

__all__ = [
    "shape_of",
    "dtype_of",
    "elementwise_shape",
    "predicate_shape",
    "unbroadcast",
    "unbroadcast_like",
    "broadcast_like",
    "normalize_axis",
    "export",
    "axes_batch_rule",
]


_HAS_SHAPE = (np.ndarray, np.generic, Tracer, LowRankArray)


def shape_of(x: Any) -> tuple[int, ...]:
    return x.shape if isinstance(x, _HAS_SHAPE) else np.shape(x)


def dtype_of(x: Any) -> np.dtype:
    dt = getattr(x, "dtype", None)
    return dt if isinstance(dt, np.dtype) else np.result_type(x)


def _aval_parts(avals: tuple) -> tuple[list, list]:
    shapes = [a.shape if isinstance(a, ShapeDtype) else np.shape(a) for a in avals]
    dtypes = [a.dtype if isinstance(a, ShapeDtype) else a for a in avals]
    return shapes, dtypes


def elementwise_shape(*avals: Any) -> ShapeDtype:
    """Shape rule of a broadcasting elementwise operation (NumPy's type promotion)."""
    shapes, dtypes = _aval_parts(avals)
    return ShapeDtype(np.broadcast_shapes(*shapes), np.result_type(*dtypes))


def predicate_shape(*avals: Any) -> ShapeDtype:
    """Shape rule of a broadcasting comparison or logical test: boolean result."""
    shapes, _ = _aval_parts(avals)
    return ShapeDtype(np.broadcast_shapes(*shapes), np.dtype(bool))


# Batched by broadcasting under vmap (see scigrad.core.batching).
BROADCASTING_SHAPE_RULES.update((elementwise_shape, predicate_shape))


def axes_batch_rule(prim: Primitive, *names: str) -> Callable:
    """The batching rule of a one-array primitive whose parameters ``names`` are axes of
    its input (an int, a tuple of non-negative ints, or None for all axes): the batch axis
    goes first and the axes shift by one."""

    def rule(vals: list, dims: list, **params: Any) -> tuple[Any, int]:
        x = move_axis(vals[0], dims[0], 0)
        nd = len(shape_of(x))
        for n in names:
            a = params[n]
            if a is None:
                params[n] = tuple(range(1, nd))
            elif isinstance(a, tuple):
                params[n] = tuple(i + 1 for i in a)
            else:
                params[n] = a + 1
        return prim.bind(x, **params), 0

    return rule


def normalize_axis(axis: Any, ndim: int) -> tuple[int, ...] | None:
    """``axis`` as a sorted tuple of non-negative ints (None stays None)."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(a, ndim)
        out.append(a % ndim)
    return tuple(sorted(out))


def unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``g`` over the axes that broadcasting added to an operand of ``shape``
    (the VJP of broadcasting)."""
    gshape = shape_of(g)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and gshape[i + lead] != 1
    )
    if axes:
        g = _reductions.sum(g, axis=axes, keepdims=False)
    if shape_of(g) != shape:
        g = _shape.reshape(g, shape)
    return g


def unbroadcast_like(g: Any, x: Any) -> Any:
    """``unbroadcast(g, shape_of(x))`` with the common case (no broadcasting) in one call."""
    gshape = g.shape if isinstance(g, _HAS_SHAPE) else np.shape(g)
    xshape = x.shape if isinstance(x, _HAS_SHAPE) else np.shape(x)
    return g if gshape == xshape else unbroadcast(g, xshape)


def broadcast_like(t: Any, shape: tuple[int, ...]) -> Any:
    """``t`` broadcast to ``shape`` (the JVP of broadcasting); no-op when shapes agree."""
    if shape_of(t) == shape:
        return t
    return _shape.broadcast_to(t, shape)


def export(
    namespace: dict, prim: Primitive, name: str | None = None, doc: str | None = None
) -> Callable:
    """Publish ``prim.bind`` in a module namespace under ``name``."""
    f = prim.bind
    if doc:
        f.__doc__ = doc
    namespace[name or prim.name] = f
    return f


# Bound last: these modules import this one (hot rules must not re-import per call).
from . import _reductions, _shape  # noqa: E402
